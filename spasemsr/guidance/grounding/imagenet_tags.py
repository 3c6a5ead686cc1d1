"""Short object tags for the 1000 ImageNet classes, so a classifier can act as an open-ish tagger.

The spatial text guidance wants nouns a caption would use ("cat", "boat"), not ImageNet's fine
classes ("tabby", "yawl"). The rule, in order: (1) a class in a hand-made animal super-class range
(e.g. the 118 dog breeds -> "dog"); (2) a class named in `_NAMED` (synonyms and cases where the last
word misleads, e.g. "beacon" -> "lighthouse", "traffic light" stays whole); (3) otherwise the last word
of torchvision's category name, lower-cased ("Egyptian cat" -> "cat", "park bench" -> "bench").
Classes in `_BACKGROUND` (patterns, fabrics and flat printed matter that fire on textures, not
objects) get no tag. Class names are torchvision's `MobileNet_V2_Weights.IMAGENET1K_V1.meta`.
"""

from __future__ import annotations

import torch
from torch import Tensor

# (first index, last index inclusive, tag): super-classes of the ImageNet-1k animal classes.
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 1, "fish"), (2, 4, "shark"), (5, 6, "ray"), (7, 24, "bird"), (25, 29, "salamander"), (30, 32, "frog"),
    (33, 37, "turtle"), (38, 48, "lizard"), (49, 50, "crocodile"), (52, 68, "snake"), (72, 77, "spider"),
    (80, 100, "bird"), (119, 122, "crab"), (123, 124, "lobster"), (126, 126, "crab"), (127, 144, "bird"),
    (145, 145, "penguin"), (146, 146, "bird"), (147, 148, "whale"), (150, 150, "seal"), (151, 268, "dog"),
    (269, 272, "wolf"), (273, 275, "dog"), (277, 280, "fox"), (281, 285, "cat"), (294, 297, "bear"),
    (300, 307, "beetle"), (321, 326, "butterfly"), (330, 332, "rabbit"), (339, 339, "horse"),
    (341, 343, "pig"), (345, 345, "cow"), (348, 349, "sheep"), (350, 350, "goat"), (351, 353, "antelope"),
    (369, 384, "monkey"), (385, 386, "elephant"), (387, 388, "panda"), (389, 397, "fish"),
)

_NAMED: dict[str, str] = {
    "tusker": "elephant", "wallaby": "kangaroo", "fox squirrel": "squirrel", "sea lion": "seal",
    "beacon": "lighthouse", "space shuttle": "space shuttle", "missile": "rocket", "projectile": "rocket",
    "traffic light": "traffic light", "fire engine": "fire truck", "space bar": "keyboard",
    "coffee mug": "cup", "espresso": "coffee cup", "red wine": "wine", "Granny Smith": "apple",
    "moped": "motorcycle", "motor scooter": "scooter", "mountain bike": "bicycle", "bicycle-built-for-two": "bicycle",
    "yawl": "boat", "schooner": "boat", "catamaran": "boat", "trimaran": "boat", "speedboat": "boat",
    "lifeboat": "boat", "fireboat": "boat", "canoe": "boat", "gondola": "boat", "paddlewheel": "boat",
    "liner": "ship", "container ship": "ship", "aircraft carrier": "ship", "airliner": "airplane",
    "warplane": "airplane", "cab": "car", "convertible": "car", "limousine": "car", "minivan": "car", "jeep": "car",
    "racer": "car", "beach wagon": "car", "Model T": "car", "sports car": "car", "pickup": "truck",
    "moving van": "truck", "trolleybus": "bus", "minibus": "bus", "passenger car": "train",
    "freight car": "train", "electric locomotive": "train", "steam locomotive": "train", "bullet train": "train",
    "streetcar": "tram", "sombrero": "hat", "bonnet": "hat", "pickelhaube": "helmet", "sunglass": "sunglasses",
    "jean": "jeans", "jersey": "shirt", "sweatshirt": "shirt", "maillot": "swimsuit", "maillot tank suit": "swimsuit",
    "bikini": "swimsuit", "swimming trunks": "swimsuit", "groom": "person", "ballplayer": "person",
    "scuba diver": "person", "daisy": "flower", "yellow lady's slipper": "flower", "coral fungus": "mushroom",
    "agaric": "mushroom", "gyromitra": "mushroom", "stinkhorn": "mushroom", "earthstar": "mushroom",
    "hen-of-the-woods": "mushroom", "bolete": "mushroom", "ear": "corn", "hip": "rose hip", "buckeye": "chestnut",
    "studio couch": "sofa", "four-poster": "bed", "throne": "chair", "desktop computer": "computer",
    "notebook": "computer", "laptop": "computer", "hand-held computer": "computer",
    "cellular telephone": "telephone", "pay-phone": "telephone", "lakeside": "lake", "seashore": "beach",
    "sandbar": "beach", "alp": "mountain", "volcano": "mountain", "promontory": "cliff", "coral reef": "reef",
    "cliff dwelling": "ruin", "bell cote": "bell tower", "tile roof": "roof", "thatch": "roof",
    "boathouse": "house", "mobile home": "house", "ashcan": "trash can", "Band Aid": "bandage", "Loafer": "shoe",
    "clog": "shoe", "teddy": "teddy bear", "jack-o'-lantern": "pumpkin", "brass": "plaque",
    "ice cream": "ice cream", "ice lolly": "ice lolly", "hot pot": "hot pot", "French loaf": "bread",
    "meat loaf": "meat loaf", "cash machine": "atm", "vending machine": "vending machine",
    "sewing machine": "sewing machine", "slot": "slot machine", "espresso maker": "coffee machine",
    "CD player": "stereo", "cassette player": "stereo", "tape player": "stereo", "home theater": "television",
    "entertainment center": "cabinet", "hand blower": "hair dryer", "hair slide": "hair clip",
    "ballpoint": "pen", "letter opener": "knife", "half track": "tank", "recreational vehicle": "camper",
    "jinrikisha": "rickshaw", "dogsled": "sled", "bobsled": "sled", "slide rule": "ruler", "rule": "ruler",
    "remote control": "remote", "manhole cover": "manhole", "fire screen": "fire screen", "toilet seat": "toilet",
    "plane": "hand plane", "mouse": "computer mouse", "file": "file cabinet", "barbershop": "shop",
    "bookshop": "shop", "butcher shop": "shop", "shoe shop": "shop", "tobacco shop": "shop", "toyshop": "shop",
    "grocery store": "shop", "confectionery": "shop", "bakery": "shop", "apiary": "beehive",
    "lumbermill": "sawmill", "drilling platform": "oil rig", "wreck": "shipwreck",
}

_BACKGROUND: frozenset[str] = frozenset({
    "web site", "jigsaw puzzle", "crossword puzzle", "book jacket", "comic book", "menu", "envelope", "packet",
    "window screen", "window shade", "shower curtain", "theater curtain", "chain mail", "honeycomb", "doormat",
    "maze", "velvet", "wool", "quilt", "prayer rug", "dishrag", "handkerchief", "bath towel", "paper towel",
    "toilet tissue", "stole", "feather boa", "spider web", "bubble", "nematode", "rapeseed", "mosquito net",
})


def short_tag(index: int, category: str) -> str | None:
    """The short tag of ImageNet class `index` named `category`, or None for a background class."""
    if category in _BACKGROUND:
        return None
    for first, last, tag in _RANGES:
        if first <= index <= last:
            return tag
    if category in _NAMED:
        return _NAMED[category]
    return category.split()[-1].lower()


def tag_vocabulary(categories: list[str]) -> tuple[list[str], Tensor]:
    """Distinct tags and the (classes, tags) 0/1 matrix that sums class probabilities into tag probabilities.

    Background classes have an all-zero row, so their probability mass belongs to no tag.
    """
    if len(categories) != 1000:
        raise ValueError(f"expected the 1000 ImageNet-1k category names, got {len(categories)}")
    tags: list[str] = []
    columns: dict[str, int] = {}
    pairs = []
    for index, category in enumerate(categories):
        tag = short_tag(index, category)
        if tag is None:
            continue
        if tag not in columns:
            columns[tag] = len(tags)
            tags.append(tag)
        pairs.append((index, columns[tag]))
    matrix = torch.zeros(len(categories), len(tags))
    rows, cols = zip(*pairs, strict=True)
    matrix[list(rows), list(cols)] = 1.0
    return tags, matrix
