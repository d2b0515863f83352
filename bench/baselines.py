"""The baselines of bench.py, written the way the field's own code runs them, so the ratios mean
"srpipe against the field's tools as their users run them", on identical networks and weights.

- BasicSR ESRGAN (XPixelGroup/BasicSR `PairedImageDataset`, `SRModel`/`ESRGANModel.optimize_parameters`,
  `train_RRDBNet_PSNR_x4.yml` / `train_ESRGAN_x4.yml`). fp32 eager with PyTorch's default precision
  flags and `cudnn.benchmark` on. A DataLoader with worker processes reads PNG sub-images from disk
  (BasicSR's `extract_subimages.py` layout), crops, flips and rotates them per sample in numpy, and
  converts them to tensors. Adam is PyTorch's default (foreach), EMA is a per-parameter loop, and
  every loss is read with `.item()` every step (`reduce_loss_dict`).
- DSGAN (ManuelFritsche/real-world-sr `dsgan/train.py`). Same kind of loop: workers crop 512 px from
  PNGs and downscale by 4 in the worker. We use torch's antialiased bicubic here; the official
  MATLAB-style Python loops are slower, so this flatters the baseline. D is trained on a
  non-detached fake with `retain_graph=True`, so its backward also runs through G, and losses are
  read with `.item()` every step. The official G step reused D's pre-step scores, which current
  PyTorch refuses (D's weights changed in place), so D scores the fake again, as srpipe does.
- Real-ESRGAN inference (`RealESRGANer.tile_process`). The whole image goes to the device, the model
  runs in fp16 (`model.half()`, fp32 on the CPU as its `--fp32` users do), one tile per forward pass
  with `tile_pad` 10, the output is assembled on the device, and one copy goes back at the end.

The network classes are srpipe's own: they are BasicSR's architectures with BasicSR's parameter
names, so weights load either way. The baselines therefore differ from srpipe only in how they run.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from srpipe.io.resize import bicubic_down

# ---------------------------------------------------------------------------------------------
# data: PNG sub-images on disk, read and augmented per sample in DataLoader workers


def write_subimages(folder: Path, n: int, hr_side: int, scale: int, seed: int = 0) -> Path:
    """`n` HR sub-images (hr_side px) and their x`scale` LR counterparts as PNG (BasicSR layout)."""
    rng = np.random.default_rng(seed)
    (folder / "hr").mkdir(parents=True, exist_ok=True)
    (folder / "lr").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.random((hr_side // 16, hr_side // 16, 3)).astype(np.float32)
        hr = cv2.resize(base, (hr_side, hr_side), interpolation=cv2.INTER_CUBIC)
        hr = (np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1) * 255).round().astype(np.uint8)
        lr = cv2.resize(hr, (hr_side // scale, hr_side // scale), interpolation=cv2.INTER_AREA)
        # extract_subimages.py writes with compression level 3
        cv2.imwrite(str(folder / "hr" / f"s{i:03d}.png"), hr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        cv2.imwrite(str(folder / "lr" / f"s{i:03d}.png"), lr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    return folder


def _read(path: str) -> np.ndarray:
    # BasicSR FileClient.get + imfrombytes(float32=True): bytes -> cv2.imdecode -> float32 / 255
    data = np.frombuffer(Path(path).read_bytes(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32) / 255.0


def _augment(imgs: list[np.ndarray]) -> list[np.ndarray]:
    # BasicSR data.transforms.augment: hflip, vflip, rot90 (transpose), each with p = 0.5
    hflip, vflip, rot90 = random.random() < 0.5, random.random() < 0.5, random.random() < 0.5
    out = []
    for img in imgs:
        if hflip:
            img = cv2.flip(img, 1)
        if vflip:
            img = cv2.flip(img, 0)
        if rot90:
            img = img.transpose(1, 0, 2)
        out.append(img)
    return out


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    # BasicSR img2tensor(bgr2rgb=True, float32=True)
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float()


class PairedPNGDataset(torch.utils.data.Dataset):
    """BasicSR `PairedImageDataset` (disk backend, gt_size crop, use_hflip/use_rot)."""

    def __init__(self, folder: Path, gt_size: int, scale: int, length: int):
        self.hr = sorted(str(p) for p in (folder / "hr").glob("*.png"))
        self.lr = sorted(str(p) for p in (folder / "lr").glob("*.png"))
        self.gt_size, self.scale, self.length = gt_size, scale, length  # length: dataset_enlarge_ratio

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        k = i % len(self.hr)
        gt, lq = _read(self.hr[k]), _read(self.lr[k])
        lq_size = self.gt_size // self.scale
        h, w = lq.shape[:2]  # paired_random_crop
        top, left = random.randint(0, h - lq_size), random.randint(0, w - lq_size)
        lq = lq[top : top + lq_size, left : left + lq_size]
        gt = gt[
            top * self.scale : top * self.scale + self.gt_size, left * self.scale : left * self.scale + self.gt_size
        ]
        gt, lq = _augment([gt, lq])
        return {"lq": _to_tensor(lq), "gt": _to_tensor(gt)}


class DSGANPNGDataset(torch.utils.data.Dataset):
    """real-world-sr `dsgan/data_loader.py` TrainDataset: crop, x1/4 bicubic input, native-res D crop."""

    def __init__(self, folder: Path, crop: int, scale: int, length: int):
        self.files = sorted(str(p) for p in (folder / "hr").glob("*.png"))
        self.crop, self.scale, self.length = crop, scale, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        img = _read(self.files[i % len(self.files)])
        h, w = img.shape[:2]
        y, x = random.randint(0, h - self.crop), random.randint(0, w - self.crop)
        hr = _to_tensor(img[y : y + self.crop, x : x + self.crop])
        lr = bicubic_down(hr, self.scale)
        c = self.crop // self.scale
        y, x = random.randint(0, h - c), random.randint(0, w - c)
        disc = _to_tensor(img[y : y + c, x : x + c])
        return lr, disc


def loader(dataset, batch: int, workers: int):
    # BasicSR build_dataloader: shuffle, drop_last, num_worker_per_gpu workers, no pinning (its default)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        pin_memory=False,
        persistent_workers=workers > 0,
    )


# ---------------------------------------------------------------------------------------------
# training steps


def ema(net_ema: torch.nn.Module, net: torch.nn.Module, decay: float = 0.999) -> None:
    """BasicSR BaseModel.model_ema: a Python loop over named parameters."""
    params, params_ema = dict(net.named_parameters()), dict(net_ema.named_parameters())
    for k in params_ema:
        params_ema[k].data.mul_(decay).add_(params[k].data, alpha=1 - decay)


def basicsr_psnr_step(net_g, net_g_ema, opt_g, lq, gt) -> dict[str, float]:
    """SRModel.optimize_parameters with an L1 pixel loss."""
    opt_g.zero_grad()
    output = net_g(lq)
    l_pix = F.l1_loss(output, gt)
    l_pix.backward()
    opt_g.step()
    ema(net_g_ema, net_g)
    return {"l_pix": l_pix.item()}  # reduce_loss_dict: one host sync per loss per step


def basicsr_gan_step(net_g, net_d, net_g_ema, opt_g, opt_d, vgg, lq, gt) -> dict[str, float]:
    """ESRGANModel.optimize_parameters: pixel 1e-2 + perceptual 1 + RaGAN 5e-3, then D in two backwards."""
    bce = F.binary_cross_entropy_with_logits
    for p in net_d.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    output = net_g(lq)
    l_g_pix = 1e-2 * F.l1_loss(output, gt)
    l_g_percep = vgg(output, gt)
    real_d_pred = net_d(gt).detach()
    fake_g_pred = net_d(output)
    l_g_real = bce(real_d_pred - torch.mean(fake_g_pred), torch.zeros_like(real_d_pred))
    l_g_fake = bce(fake_g_pred - torch.mean(real_d_pred), torch.ones_like(fake_g_pred))
    l_g_gan = 5e-3 * (l_g_real + l_g_fake) / 2
    (l_g_pix + l_g_percep + l_g_gan).backward()
    opt_g.step()

    for p in net_d.parameters():
        p.requires_grad = True
    opt_d.zero_grad()
    # real (BasicSR: "In order to avoid the error in distributed training ... we separate the backwards")
    fake_d_pred = net_d(output).detach()
    real_d_pred = net_d(gt)
    l_d_real = bce(real_d_pred - torch.mean(fake_d_pred), torch.ones_like(real_d_pred)) * 0.5
    l_d_real.backward()
    fake_d_pred = net_d(output.detach())
    l_d_fake = bce(fake_d_pred - torch.mean(real_d_pred.detach()), torch.zeros_like(fake_d_pred)) * 0.5
    l_d_fake.backward()
    opt_d.step()
    ema(net_g_ema, net_g)
    return {
        k: v.item()
        for k, v in {
            "l_g_pix": l_g_pix,
            "l_g_percep": l_g_percep,
            "l_g_gan": l_g_gan,
            "l_d_real": l_d_real,
            "l_d_fake": l_d_fake,
            "out_d_real": real_d_pred.mean(),
            "out_d_fake": fake_d_pred.mean(),
        }.items()
    }


def _low(x, k=5):
    return F.avg_pool2d(x, k, stride=1)


def _high(x, k=5):
    return 0.5 + 0.5 * (x - F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False))


def dsgan_official_step(model_g, model_d, opt_g, opt_d, lpips, lr, disc) -> dict[str, float]:
    """dsgan/train.py: D on a non-detached fake (retain_graph), then G (D scores the fake again)."""
    fake = model_g(lr)
    opt_d.zero_grad()
    d_fake = torch.sigmoid(model_d(_high(fake)))
    d_real = torch.sigmoid(model_d(_high(disc)))
    d_loss = torch.mean(-torch.log(1 - d_fake + 1e-8)) + torch.mean(-torch.log(d_real + 1e-8))
    d_loss.backward(retain_graph=True)
    opt_d.step()
    opt_g.zero_grad()
    l_col = F.l1_loss(_low(fake), _low(lr))
    l_tex = torch.mean(-torch.log(torch.sigmoid(model_d(_high(fake))) + 1e-8))
    l_per = lpips(fake, lr, normalize=True).mean()
    g_loss = l_col + 0.005 * l_tex + 0.01 * l_per
    g_loss.backward()
    opt_g.step()
    return {
        k: v.item()
        for k, v in {"d_loss": d_loss, "g_loss": g_loss, "l_col": l_col, "l_tex": l_tex, "l_per": l_per}.items()
    }


# ---------------------------------------------------------------------------------------------
# inference


@torch.no_grad()
def realesrgan_upscale(
    model, img: torch.Tensor, *, scale: int, tile: int, tile_pad: int = 10, half: bool, device
) -> torch.Tensor:
    """RealESRGANer.pre_process + tile_process + post_process for a (3, H, W) float image in [0, 1]."""
    x = img.unsqueeze(0).to(device)
    if half:
        x = x.half()
    _, c, height, width = x.shape
    output = x.new_zeros((1, c, height * scale, width * scale))
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    for y in range(tiles_y):
        for xx in range(tiles_x):
            sx, sy = xx * tile, y * tile
            ex, ey = min(sx + tile, width), min(sy + tile, height)
            sxp, exp_ = max(sx - tile_pad, 0), min(ex + tile_pad, width)
            syp, eyp = max(sy - tile_pad, 0), min(ey + tile_pad, height)
            out_tile = model(x[:, :, syp:eyp, sxp:exp_])
            ox, oy = (sx - sxp) * scale, (sy - syp) * scale
            output[:, :, sy * scale : ey * scale, sx * scale : ex * scale] = out_tile[
                :, :, oy : oy + (ey - sy) * scale, ox : ox + (ex - sx) * scale
            ]
    return output.squeeze(0).float().cpu().clamp_(0, 1)
