# Writes golden.json: Pillow's own results for the resampling and ADM center crop that
# src/data/resample.ts and src/data/folder.ts reimplement. Inputs are made by a formula (no files),
# which the TypeScript test recomputes:  p(x, y, c) = (7x + 13y + 29c + (x·y mod 17)) mod 256.
# Run: python3 tests/data/pillow/make_golden.py   (needs Pillow and numpy; Debian: python3-pil python3-numpy)
import json, os
import numpy as np
import PIL
from PIL import Image

def pattern(w, h):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(7 * x + 13 * y + 29 * c + (x * y) % 17) % 256 for c in range(3)], axis=-1).astype(np.uint8)

def center_crop_arr(pil_image, image_size):  # ADM / DiT, as published
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y: crop_y + image_size, crop_x: crop_x + image_size]

filters = {'box': Image.BOX, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC}
resize = []
for (w, h), (ow, oh) in [((37, 23), (16, 11)), ((37, 23), (50, 41)), ((20, 30), (10, 15)), ((9, 9), (4, 13))]:
    img = Image.fromarray(pattern(w, h), 'RGB')
    for name, f in filters.items():
        out = np.array(img.resize((ow, oh), resample=f))  # [oh, ow, 3]
        resize.append({'w': w, 'h': h, 'outW': ow, 'outH': oh, 'filter': name, 'hwc': out.flatten().tolist()})
crops = []
for (w, h), size in [((150, 97), 32), ((131, 70), 32), ((40, 130), 16), ((64, 64), 32)]:
    out = center_crop_arr(Image.fromarray(pattern(w, h), 'RGB'), size)
    crops.append({'w': w, 'h': h, 'size': size, 'hwc': out.flatten().tolist()})
grey = [{'w': 37, 'h': 23, 'L': np.array(Image.fromarray(pattern(37, 23), 'RGB').convert('L')).flatten().tolist()}]
with open(os.path.join(os.path.dirname(__file__), 'golden.json'), 'w') as f:
    json.dump({'pillow': PIL.__version__, 'resize': resize, 'centerCrop': crops, 'grey': grey}, f, separators=(',', ':'))
