"""Low-resolution images from high-resolution ones.

``imresize``: MATLAB-exact bicubic resizing in torch; ``presets``: blur, bicubic downscale,
noise and JPEG applied to one image; ``run``: the degrade stage over the whole data folder.
"""
