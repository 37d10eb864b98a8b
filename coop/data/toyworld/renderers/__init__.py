"""The renderers, one module per family; importing this package registers their image kinds (kinds.KINDS).

    photos    "shapes", "v2", "hard"   shaded shapes on plain or patterned backgrounds
    drawings  "sketch", "cartoon"      pen outlines on paper; cartoon, pixel-art and embroidered renditions
    textures  "textures"               a pattern in two contrasting colours
    flowers   "flowers"                rings of petals around a disc

A renderer maps (classname, rng, S) to a float image (3, S, S) and its caption words; `sampling`
downsamples it, lights it unevenly and adds noise.
"""
from coop.data.toyworld.renderers import drawings, flowers, photos, textures  # noqa: F401  (registers the kinds)
