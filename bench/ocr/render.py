#!/usr/bin/python3
"""Render a fixed set of text lines (words, numbers, punctuation) as
grayscale images for the text-recognition accuracy benchmark.

usage: render.py OUT_DIR [COUNT]   (needs python3-pil and fonts-dejavu-core)

Writes OUT_DIR/lines.bin: per line a little-endian u32 width, u32 height,
then width*height gray bytes (0 = black); and OUT_DIR/labels.txt, one
label per line. The same COUNT always gives the same lines.
"""
import random
import struct
import sys

from PIL import Image, ImageDraw, ImageFont

WORDS = ("the quick brown fox jumps over lazy dog model weight channel group scale zero "
         "point quantize network layer kernel output input error report server request "
         "tensor float integer signed round nearest flip sum range value table total "
         "Paris London Berlin Tokyo Madrid Rome Vienna Prague Oslo Dublin Lisbon Athens "
         "March April June July August October November Monday Friday Sunday").split()
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"]


def line(rng):
    parts = []
    for _ in range(rng.randint(2, 5)):
        k = rng.random()
        if k < 0.7:
            w = rng.choice(WORDS)
            parts.append(w.capitalize() if rng.random() < 0.2 else w)
        elif k < 0.9:
            parts.append(str(rng.randint(0, 99999)))
        else:
            parts.append("%d.%02d" % (rng.randint(0, 999), rng.randint(0, 99)))
    s = " ".join(parts)
    if rng.random() < 0.3:
        s += rng.choice(".,:;!?")
    return s


def main():
    out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(20221)
    fonts = [ImageFont.truetype(f, 32) for f in FONTS]
    with open(out + "/lines.bin", "wb") as b, open(out + "/labels.txt", "w") as lab:
        for i in range(count):
            text = line(rng)
            font = fonts[i % len(fonts)]
            left, top, right, bottom = font.getbbox(text)
            w, h = right - left + 16, 48
            img = Image.new("L", (w, h), 255)
            ImageDraw.Draw(img).text((8 - left, (h - (bottom - top)) // 2 - top), text,
                                     font=font, fill=0)
            b.write(struct.pack("<II", w, h))
            b.write(img.tobytes())
            lab.write(text + "\n")


main()
