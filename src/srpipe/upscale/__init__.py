"""Stage 2: ESRGAN (RRDBNet) trained on LR/HR pairs, network interpolation, tiled upscaling.

Modules: `archs` (RRDBNet, discriminators), `losses`, `config` (UpscaleConfig, PRESETS), `data`
(paired folders, decode cache), `train` (`sr-train`), `interpolate`, `infer` (`upscale`), `interop`
(reading every ESRGAN key layout, BasicSR/spandrel-compatible export).
"""
