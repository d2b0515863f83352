"""Images in and out, and what is done to pixels without learning: reading every input kind (EXIF
orientation, 16-bit, gray, alpha, ICC/EXIF kept) and atomic writes (`imageio`), bicubic and other
resizing (`resize`), low/high-pass filters (`filters`), tiled processing of large images (`tiling`)
and the JPEG stage (`jpeg`). The lowest tier above the core: it imports only `srpipe.errors`,
`srpipe.config` and `srpipe.log`, never training, evaluation or the stages."""
