"""Image-quality metrics for super-resolution.

- ``reference``: float64 numpy PSNR/SSIM following the MATLAB recipe the SR literature reports;
  the ground truth every other implementation is checked against.
- ``torch_metrics``: batched, device-agnostic PSNR/SSIM/MS-SSIM for the validation loop.
- ``color``: RGB -> Y (ITU-R BT.601, studio swing) shared by both.
- ``lpips_metric``: LPIPS (Zhang et al. 2018), reported as unavailable, with the reason, when
  its pretrained ImageNet backbone cannot be loaded.
"""
