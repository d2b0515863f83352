"""Training machinery shared by both stages: precision and the NaN guard (`accel`), batched
device-side augmentation (`augment`), checkpoints and weights files (`ckpt`), run folders
(`runfolder`), loss logs (`runlog`), stop signals (`signals`), torchrun/DDP (`distributed`),
pretrained backbone files (`weights`), the set-up of a training file (`training`) and the training
loop itself (`loop`). It builds on `srpipe.io` and knows nothing of DSGAN or ESRGAN:
stage-specific steps, networks and losses live in `degrade/` and `upscale/`."""
