"""Evaluation: PSNR/SSIM (Y channel, BasicSR convention), colour PSNR and LPIPS (`metrics`),
FID/KID with a feature cache (`fid`), and how realistic synthetic LR is next to real LR
(`realism`). Same tier as `srpipe.engine`; used by both stages and by `srpipe eval*`, and never
imports the stages, the pipeline or the command line."""
