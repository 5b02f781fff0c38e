"""The built-in demo catalog: 200 synthetic products in 8 categories.

Titles are built from brand x model x product type x variant lists, so every item is
distinct, and descriptions use each category's own vocabulary so a sentence encoder
can tell the categories apart. Optional 64x64 PNG thumbnails carry a per-category
colour and shape motif. Every item is a JSON-ready dict with exactly the fields of
:class:`streams.records.ItemEvent`.

>>> items = demo_catalog(images=False)
>>> len(items), items[0]["item_id"], sorted(items[0]) == sorted(ITEM_FIELDS)
(200, 'audio-001', True)
>>> sorted(items_by_category(items)) == sorted(CATEGORIES)
True
"""

from __future__ import annotations

import base64
import colorsys
import io
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: The demo categories, in catalog order.
CATEGORIES: tuple[str, ...] = ("audio", "running", "kitchen", "books", "gaming", "outdoor", "beauty", "toys")

#: The keys of every catalog dict (the fields of ``ItemEvent``).
ITEM_FIELDS: tuple[str, ...] = (
    "item_id",
    "title",
    "description",
    "category",
    "price",
    "image",
    "tags",
    "deleted",
    "ts",
    "in_stock",
)

#: Items generated per category by :func:`demo_catalog`.
ITEMS_PER_CATEGORY = 25

#: Thumbnail side in pixels.
IMAGE_SIZE = 64


@dataclass(frozen=True)
class _ProductType:
    """One kind of product within a category."""

    noun: str  # goes into the title
    blurbs: tuple[str, ...]  # first description sentence, one picked per item
    features: tuple[str, ...]  # two picked per item for the second sentence
    variants: tuple[str, ...]  # colour, size, shade, format...
    price: tuple[float, float]
    tags: tuple[str, ...]  # the first is always used
    query: str  # what a shopper types to find it
    models: tuple[str, ...] = ()  # overrides the category's model names (books: titles)


@dataclass(frozen=True)
class _CategorySpec:
    brands: tuple[str, ...]
    models: tuple[str, ...]
    types: tuple[_ProductType, ...]
    title_format: str = "{brand} {model} {noun} - {variant}"
    feature_frames: tuple[str, ...] = ("Features {a} and {b}.", "Includes {a} and {b}.", "Comes with {a} and {b}.")


_COLOURS = ("Midnight Black", "Arctic White", "Slate Grey", "Navy Blue", "Sage Green", "Sand Beige", "Crimson Red")

_SPECS: Mapping[str, _CategorySpec] = MappingProxyType(
    {
        "audio": _CategorySpec(
            brands=("Sonora", "Auralis", "Beatline", "Northtone", "Kestrel Audio", "Vox & Vale", "Echelon"),
            models=("Pulse", "Air", "Studio", "Flow", "Arc", "Nova", "Loop", "Max"),
            types=(
                _ProductType(
                    noun="True Wireless Earbuds",
                    blurbs=(
                        "True wireless earbuds with a pocket-sized charging case for music, podcasts and calls on the go.",
                        "Compact wireless earbuds that pair instantly over Bluetooth and stay put in your ears on commutes and workouts.",
                        "Noise cancelling wireless earbuds with rich bass and crystal-clear microphones for hands-free calls.",
                    ),
                    features=(
                        "active noise cancelling",
                        "a transparency mode",
                        "up to 30 hours of battery with the case",
                        "IPX4 sweat resistance",
                        "a wireless charging case",
                        "multipoint Bluetooth 5.3",
                    ),
                    variants=_COLOURS,
                    price=(39.0, 249.0),
                    tags=("wireless earbuds", "bluetooth", "true wireless", "noise cancelling"),
                    query="wireless earbuds",
                ),
                _ProductType(
                    noun="Over-Ear Headphones",
                    blurbs=(
                        "Over-ear headphones with plush memory-foam cushions and adaptive noise cancelling for long flights and focused listening.",
                        "Wireless over-ear headphones tuned for detailed, spacious sound on music, films and podcasts.",
                    ),
                    features=(
                        "40 mm dynamic drivers",
                        "hybrid active noise cancelling",
                        "up to 50 hours of playback",
                        "a foldable design with a hard case",
                        "USB-C fast charging",
                        "hi-res LDAC audio",
                    ),
                    variants=_COLOURS,
                    price=(79.0, 399.0),
                    tags=("headphones", "noise cancelling", "over-ear", "bluetooth"),
                    query="noise cancelling headphones",
                ),
                _ProductType(
                    noun="Portable Bluetooth Speaker",
                    blurbs=(
                        "A portable bluetooth speaker with punchy bass and 360-degree sound for the beach, the park or the backyard.",
                        "A rugged bluetooth speaker that fills a room with loud, clear audio and survives splashes and drops.",
                    ),
                    features=(
                        "IP67 waterproofing",
                        "a 20-hour battery",
                        "stereo pairing",
                        "a built-in speakerphone",
                        "a rubberised shell",
                    ),
                    variants=_COLOURS,
                    price=(29.0, 199.0),
                    tags=("speaker", "bluetooth", "portable audio"),
                    query="bluetooth speaker",
                ),
                _ProductType(
                    noun="Dolby Atmos Soundbar",
                    blurbs=(
                        "A slim soundbar that upgrades TV audio with clear dialogue and cinematic surround sound.",
                        "A home theatre soundbar that puts immersive Dolby Atmos sound under your television.",
                    ),
                    features=(
                        "HDMI eARC",
                        "a wireless subwoofer",
                        "a night mode",
                        "dialogue enhancement",
                        "Wi-Fi streaming",
                    ),
                    variants=("2.1 Channel", "3.1 Channel", "5.1 Channel", "Compact", "With Subwoofer"),
                    price=(149.0, 899.0),
                    tags=("soundbar", "home theatre", "tv audio"),
                    query="soundbar for tv",
                ),
                _ProductType(
                    noun="Belt-Drive Turntable",
                    blurbs=(
                        "A belt-drive record player for vinyl with a built-in phono preamp and a pre-mounted cartridge.",
                        "A hi-fi turntable that plays your vinyl records with warm, low-noise analogue sound.",
                    ),
                    features=(
                        "33 and 45 RPM speeds",
                        "Bluetooth output",
                        "an aluminium platter",
                        "USB recording",
                        "an adjustable counterweight",
                    ),
                    variants=("Walnut", "Black Oak", "White Gloss", "Bamboo"),
                    price=(129.0, 599.0),
                    tags=("turntable", "vinyl", "record player", "hi-fi"),
                    query="record player",
                ),
                _ProductType(
                    noun="Powered Bookshelf Speakers",
                    blurbs=(
                        "A pair of powered bookshelf speakers for desks and living rooms with warm, detailed stereo sound.",
                        "Active stereo speakers with a built-in amplifier for turntables, TVs and computer audio.",
                    ),
                    features=(
                        "optical and RCA inputs",
                        "Bluetooth streaming",
                        "a subwoofer output",
                        "4-inch woofers",
                        "silk-dome tweeters",
                    ),
                    variants=("Walnut", "Matte Black", "White", "Oak"),
                    price=(149.0, 499.0),
                    tags=("speakers", "stereo", "hi-fi"),
                    query="bookshelf speakers",
                ),
                _ProductType(
                    noun="Headphone Amp & DAC",
                    blurbs=(
                        "A desktop headphone amplifier and DAC that drives demanding headphones with low-noise, high-resolution audio.",
                    ),
                    features=(
                        "balanced 4.4 mm output",
                        "32-bit/384 kHz decoding",
                        "a volume knob with gain switch",
                        "USB-C input",
                    ),
                    variants=("Silver", "Black", "Space Grey"),
                    price=(89.0, 449.0),
                    tags=("headphone amp", "dac", "hi-fi"),
                    query="headphone amp",
                ),
            ),
        ),
        "running": _CategorySpec(
            brands=("Stridewell", "Kinetica", "Apex Run", "Fleetfoot", "Lumen Athletics", "Ridgeback", "Tempo Labs"),
            models=("Glide", "Velocity", "Cloudstep", "Racer", "Pace", "Summit", "Flux", "Drift"),
            types=(
                _ProductType(
                    noun="Road Running Shoes",
                    blurbs=(
                        "Cushioned road running shoes with a responsive foam midsole for daily training miles and race day.",
                        "Lightweight running shoes built for tempo runs, intervals and marathon training on pavement.",
                    ),
                    features=(
                        "a breathable engineered mesh upper",
                        "an 8 mm heel-to-toe drop",
                        "a carbon-fibre plate",
                        "reflective details for night runs",
                        "a durable rubber outsole",
                    ),
                    variants=("Volt Yellow", "Coral", "Black/White", "Ocean Blue", "Grey/Orange", "Triple Black"),
                    price=(89.0, 249.0),
                    tags=("running shoes", "road running", "marathon", "cushioned"),
                    query="running shoes",
                ),
                _ProductType(
                    noun="Trail Running Shoes",
                    blurbs=(
                        "Grippy trail running shoes with aggressive lugs and a rock plate for muddy, technical mountain paths.",
                        "Stable trail running shoes that protect your feet on rocky singletrack and steep descents.",
                    ),
                    features=(
                        "a sticky rubber outsole",
                        "a waterproof membrane",
                        "a reinforced toe bumper",
                        "a quick-lace system",
                        "5 mm lugs",
                    ),
                    variants=("Moss Green", "Rust", "Charcoal", "Glacier Blue", "Black/Lime"),
                    price=(99.0, 199.0),
                    tags=("trail running", "running shoes", "ultrarunning"),
                    query="trail running shoes",
                ),
                _ProductType(
                    noun="Cushioned Running Socks (3-Pack)",
                    blurbs=(
                        "Moisture-wicking running socks with arch support and seamless toes that prevent blisters on long runs.",
                    ),
                    features=(
                        "a merino wool blend",
                        "an anti-slip heel tab",
                        "targeted cushioning",
                        "a breathable mesh top",
                    ),
                    variants=("Ankle", "Quarter", "Crew", "No-Show"),
                    price=(12.0, 29.0),
                    tags=("running socks", "anti-blister", "running apparel"),
                    query="running socks",
                ),
                _ProductType(
                    noun="GPS Running Watch",
                    blurbs=(
                        "A GPS running watch that tracks pace, distance, heart rate and training load, with structured workouts on your wrist.",
                        "A lightweight GPS sports watch for runners with accurate pace, cadence and recovery insights.",
                    ),
                    features=(
                        "wrist-based heart rate",
                        "a 14-day battery",
                        "offline maps",
                        "a VO2 max estimate",
                        "a race-time predictor",
                    ),
                    variants=("42 mm", "46 mm", "Solar Edition", "Titanium"),
                    price=(149.0, 599.0),
                    tags=("gps watch", "running watch", "heart rate", "training"),
                    query="gps running watch",
                ),
                _ProductType(
                    noun="Lightweight Running Shorts",
                    blurbs=(
                        "Lightweight running shorts with a built-in liner and a zip pocket for keys and energy gels.",
                    ),
                    features=("quick-dry fabric", "a 5-inch inseam", "reflective trim", "bonded hems"),
                    variants=("Black", "Navy", "Lime", "Charcoal", "Red"),
                    price=(25.0, 65.0),
                    tags=("running shorts", "running apparel", "quick-dry"),
                    query="running shorts",
                ),
                _ProductType(
                    noun="Running Hydration Vest",
                    blurbs=(
                        "A snug running hydration vest with soft flasks for trail runs, ultramarathons and long training days.",
                    ),
                    features=("two 500 ml soft flasks", "a bounce-free fit", "a safety whistle", "a phone pocket"),
                    variants=("5 L", "8 L", "12 L"),
                    price=(59.0, 159.0),
                    tags=("hydration vest", "trail running", "ultrarunning"),
                    query="running hydration vest",
                ),
                _ProductType(
                    noun="Windproof Running Jacket",
                    blurbs=(
                        "A packable windproof running jacket for cold morning runs, with reflective details for low light.",
                    ),
                    features=("a stow-away hood", "thumb loops", "a zipped chest pocket", "laser-cut vents"),
                    variants=("Hi-Vis Yellow", "Black", "Cobalt", "Olive"),
                    price=(69.0, 179.0),
                    tags=("running jacket", "running apparel", "windproof"),
                    query="running jacket",
                ),
            ),
        ),
        "kitchen": _CategorySpec(
            brands=("Hearth & Co", "Copperline", "Ferro", "Maison Blanc", "Oakridge Kitchen", "Culina", "Brava"),
            models=("Classic", "Pro", "Artisan", "Heritage", "Essential", "Signature"),
            types=(
                _ProductType(
                    noun="Cast Iron Skillet",
                    blurbs=(
                        "A pre-seasoned cast iron skillet that sears steaks, bakes cornbread and goes from stovetop to oven.",
                    ),
                    features=("a helper handle", "induction compatibility", "two pour spouts", "a lifetime warranty"),
                    variants=("8-inch", "10-inch", "12-inch", "Deep 12-inch"),
                    price=(24.0, 89.0),
                    tags=("cast iron", "cookware", "skillet"),
                    query="cast iron skillet",
                ),
                _ProductType(
                    noun="Chef's Knife",
                    blurbs=(
                        "A razor-sharp chef's knife forged from high-carbon stainless steel for slicing, dicing and chopping vegetables.",
                        "A balanced kitchen knife with a hand-honed edge for precise prep work, from onions to herbs.",
                    ),
                    features=(
                        "an 8-inch blade",
                        "a full-tang build",
                        "an ergonomic pakkawood handle",
                        "a Damascus pattern",
                        "a protective blade guard",
                    ),
                    variants=("8-inch", "Santoku 7-inch", "10-inch", "Damascus"),
                    price=(39.0, 249.0),
                    tags=("chef's knife", "kitchen knives", "cutlery"),
                    query="chef knife",
                ),
                _ProductType(
                    noun="Espresso Machine",
                    blurbs=(
                        "A home espresso machine with a 15-bar pump and steam wand for cafe-style lattes and cappuccinos.",
                        "A compact espresso maker that pulls rich, crema-topped shots of coffee in under a minute.",
                    ),
                    features=(
                        "a built-in conical burr grinder",
                        "PID temperature control",
                        "a milk frothing wand",
                        "a 58 mm portafilter",
                        "a cup warmer",
                    ),
                    variants=("Brushed Steel", "Black", "Cream", "Red"),
                    price=(199.0, 1199.0),
                    tags=("espresso machine", "coffee", "barista"),
                    query="espresso machine",
                ),
                _ProductType(
                    noun="Enameled Dutch Oven",
                    blurbs=(
                        "An enameled cast iron Dutch oven for slow-cooked stews, braises and crusty no-knead bread.",
                    ),
                    features=(
                        "a tight-fitting lid",
                        "an oven-safe knob",
                        "a chip-resistant enamel",
                        "wide loop handles",
                    ),
                    variants=("4 qt", "5.5 qt", "7 qt", "Oval 6 qt"),
                    price=(59.0, 379.0),
                    tags=("dutch oven", "cookware", "cast iron"),
                    query="dutch oven",
                ),
                _ProductType(
                    noun="Stand Mixer",
                    blurbs=(
                        "A tilt-head stand mixer with a stainless steel bowl for kneading dough, whipping cream and baking cakes.",
                    ),
                    features=("10 speed settings", "a dough hook", "a flat beater and whisk", "a splash guard"),
                    variants=("Empire Red", "Pistachio", "Matte Black", "Almond Cream"),
                    price=(179.0, 549.0),
                    tags=("stand mixer", "baking", "kitchen appliances"),
                    query="stand mixer",
                ),
                _ProductType(
                    noun="End-Grain Cutting Board",
                    blurbs=(
                        "A thick end-grain wooden cutting board that is gentle on knife edges, with juice grooves for carving roasts.",
                    ),
                    features=("non-slip feet", "food-safe oil finish", "hand grips", "a reversible design"),
                    variants=("Walnut", "Maple", "Acacia", "Teak"),
                    price=(29.0, 119.0),
                    tags=("cutting board", "kitchen tools", "wood"),
                    query="cutting board",
                ),
                _ProductType(
                    noun="Burr Coffee Grinder",
                    blurbs=(
                        "A conical burr coffee grinder with stepped settings from fine espresso to coarse French press.",
                    ),
                    features=("40 grind settings", "a timed dose", "an anti-static bean hopper", "quiet operation"),
                    variants=("Stainless", "Black", "White"),
                    price=(49.0, 249.0),
                    tags=("coffee grinder", "coffee", "kitchen appliances"),
                    query="coffee grinder",
                ),
            ),
        ),
        "books": _CategorySpec(
            brands=(
                "Mara Quill",
                "Elias Thorne",
                "Priya Raman",
                "Jonah Achebe",
                "Lena Whitford",
                "Tomas Varga",
                "Hana Okafor",
                "Cyrus Bell",
            ),
            models=(),
            title_format="{model}: {noun} by {brand} ({variant})",
            feature_frames=("{a} {b}",),
            types=(
                _ProductType(
                    noun="A Novel",
                    blurbs=(
                        "A moving literary novel about family, memory and the secrets that shape three generations.",
                        "A tender, beautifully written novel of love and loss set in a small coastal town.",
                    ),
                    features=(
                        "A book club favourite.",
                        "Winner of a national fiction prize.",
                        "Now a major television series.",
                        "Includes a reading group guide.",
                    ),
                    variants=("Paperback", "Hardcover", "Ebook"),
                    price=(9.99, 28.99),
                    tags=("literary fiction", "novel", "fiction"),
                    query="literary fiction novel",
                    models=(
                        "The Glass Orchard",
                        "Salt and Ember",
                        "The Quiet Year",
                        "A House by the River",
                        "Letters to Marguerite",
                        "The Lighthouse Keeper's Daughter",
                    ),
                ),
                _ProductType(
                    noun="A Science Fiction Novel",
                    blurbs=(
                        "A science fiction novel about a generation starship crew who discover their voyage is not what it seems.",
                        "A fast-paced space opera of interstellar war, first contact with aliens and a rogue artificial intelligence.",
                    ),
                    features=(
                        "The first book in a new trilogy.",
                        "Shortlisted for the Hugo Award.",
                        "A must-read for fans of hard sci-fi.",
                        "Includes a bonus short story.",
                    ),
                    variants=("Paperback", "Hardcover", "Ebook"),
                    price=(9.99, 27.99),
                    tags=("science fiction", "sci-fi", "space opera", "fiction"),
                    query="science fiction novel",
                    models=(
                        "The Silent Orbit",
                        "Children of the Far Star",
                        "Red Dust Protocol",
                        "The Last Starship",
                        "Echoes of Andromeda",
                        "Quantum Drift",
                    ),
                ),
                _ProductType(
                    noun="A Thriller",
                    blurbs=(
                        "A twisty crime thriller in which a detective races to catch a killer before the next body turns up.",
                        "A gripping psychological mystery about a missing woman, an unreliable witness and a town full of lies.",
                    ),
                    features=(
                        "An instant bestseller.",
                        "You won't see the ending coming.",
                        "The first detective inspector mystery in the series.",
                        "A page-turner for long nights.",
                    ),
                    variants=("Paperback", "Hardcover", "Ebook"),
                    price=(8.99, 26.99),
                    tags=("mystery", "thriller", "crime fiction"),
                    query="mystery thriller",
                    models=(
                        "The Ninth Witness",
                        "Cold Harbour",
                        "Gone by Midnight",
                        "The Paris Alibi",
                        "Blackwater Lane",
                        "The Silent Lodger",
                    ),
                ),
                _ProductType(
                    noun="A Cookbook",
                    blurbs=(
                        "A cookbook with 100 easy recipes for weeknight dinners, illustrated with full-colour photographs.",
                        "A cookbook of seasonal recipes and baking projects written by an award-winning food writer.",
                    ),
                    features=(
                        "Recipes are tested in home kitchens.",
                        "Includes vegetarian and vegan chapters.",
                        "A perfect gift for home cooks.",
                        "With step-by-step photographs.",
                    ),
                    variants=("Hardcover", "Paperback", "Spiral-Bound"),
                    price=(14.99, 39.99),
                    tags=("cookbook", "recipes", "food writing"),
                    query="cookbook",
                    models=(
                        "Weeknight Pasta",
                        "The Sourdough Year",
                        "Plant Kitchen",
                        "Smoke and Fire",
                        "Simple Japanese Home Cooking",
                        "One Pan Suppers",
                    ),
                ),
                _ProductType(
                    noun="A Fantasy Novel",
                    blurbs=(
                        "An epic fantasy novel of dragons, sorcery and a stolen crown in a kingdom on the brink of war.",
                        "A dark fantasy adventure about a young witch, an ancient curse and the forest that hides it.",
                    ),
                    features=(
                        "Book one of an epic saga.",
                        "With a fold-out map of the realm.",
                        "For fans of sword and sorcery.",
                        "A Sunday Times bestseller.",
                    ),
                    variants=("Paperback", "Hardcover", "Ebook"),
                    price=(9.99, 29.99),
                    tags=("fantasy", "epic fantasy", "fiction"),
                    query="fantasy books",
                    models=(
                        "The Dragon's Oath",
                        "Crown of Ash",
                        "The Witch of Hollow Wood",
                        "Shadows over Eldmere",
                        "The Iron Throne of Vael",
                        "Song of the Ember Mage",
                    ),
                ),
                _ProductType(
                    noun="A History",
                    blurbs=(
                        "A vivid work of narrative history that brings empires, explorers and forgotten lives back to life.",
                        "A sweeping nonfiction history book drawing on letters, diaries and newly opened archives.",
                    ),
                    features=(
                        "Illustrated with maps and plates.",
                        "A New York Times notable book.",
                        "Meticulously researched and compulsively readable.",
                        "With notes and a full index.",
                    ),
                    variants=("Hardcover", "Paperback", "Ebook"),
                    price=(12.99, 34.99),
                    tags=("history", "nonfiction", "biography"),
                    query="history book",
                    models=(
                        "The Cartographer's War",
                        "Empire of Salt",
                        "Moonshot",
                        "The Silk Roads Reborn",
                        "The Last Emperor's Daughter",
                        "Iron and Steam",
                    ),
                ),
                _ProductType(
                    noun="A Practical Guide",
                    blurbs=(
                        "A practical self-help book about building better habits, beating procrastination and finding focus.",
                        "A warm, science-based guide to calmer thinking, better sleep and healthier relationships.",
                    ),
                    features=(
                        "Includes worksheets and exercises.",
                        "Over a million copies sold.",
                        "Written by a clinical psychologist.",
                        "Short chapters you can read in ten minutes.",
                    ),
                    variants=("Paperback", "Hardcover", "Ebook", "Audiobook"),
                    price=(9.99, 24.99),
                    tags=("self-help", "psychology", "nonfiction"),
                    query="self help book",
                    models=(
                        "Atomic Mornings",
                        "The Calm Mind",
                        "Deep Work Days",
                        "The Art of Small Steps",
                        "Unhurried",
                        "Think Kinder",
                    ),
                ),
            ),
        ),
        "gaming": _CategorySpec(
            brands=("HyperForge", "Pixelcraft", "Ronin Gaming", "Titan Play", "Zephyr", "Quantum Edge", "Vortex"),
            models=("X", "Pro", "Elite", "Lite", "Turbo", "Apex", "V2"),
            types=(
                _ProductType(
                    noun="Wireless Game Controller",
                    blurbs=(
                        "A wireless game controller with hall-effect thumbsticks and remappable back paddles for PC, console and cloud gaming.",
                        "An ergonomic gamepad with low-latency wireless, rumble motors and responsive triggers.",
                    ),
                    features=(
                        "hall-effect joysticks",
                        "four back paddles",
                        "a 40-hour battery",
                        "a charging dock",
                        "trigger stops",
                    ),
                    variants=("Black", "White", "Cyber Purple", "Transparent", "Camo"),
                    price=(39.0, 179.0),
                    tags=("game controller", "gamepad", "pc gaming", "console"),
                    query="wireless game controller",
                ),
                _ProductType(
                    noun="Handheld Gaming Console",
                    blurbs=(
                        "A handheld gaming console with a bright 7-inch screen for playing your game library anywhere.",
                        "A portable gaming PC that runs AAA games on the go and docks to your TV.",
                    ),
                    features=(
                        "a 120 Hz display",
                        "512 GB storage",
                        "a microSD slot",
                        "built-in controls with gyro aiming",
                    ),
                    variants=("256 GB", "512 GB", "1 TB", "OLED"),
                    price=(199.0, 649.0),
                    tags=("handheld console", "video games", "portable gaming"),
                    query="handheld console",
                ),
                _ProductType(
                    noun="Mechanical Gaming Keyboard",
                    blurbs=(
                        "A mechanical gaming keyboard with hot-swappable switches, per-key RGB lighting and a detachable USB-C cable.",
                        "A tenkeyless mechanical keyboard with fast linear switches for competitive gaming.",
                    ),
                    features=(
                        "hot-swappable switches",
                        "per-key RGB",
                        "PBT keycaps",
                        "a 1000 Hz polling rate",
                        "a magnetic wrist rest",
                    ),
                    variants=("Red Switches", "Brown Switches", "Blue Switches", "75% Layout", "Full Size"),
                    price=(59.0, 229.0),
                    tags=("mechanical keyboard", "rgb", "pc gaming"),
                    query="mechanical keyboard",
                ),
                _ProductType(
                    noun="Wireless Gaming Mouse",
                    blurbs=(
                        "An ultralight wireless gaming mouse with a 26K DPI optical sensor for precise aim in shooters.",
                    ),
                    features=("a 58-gram shell", "PTFE feet", "a 70-hour battery", "programmable side buttons"),
                    variants=("Black", "White", "Pink", "Glacier"),
                    price=(39.0, 159.0),
                    tags=("gaming mouse", "fps", "pc gaming"),
                    query="gaming mouse",
                ),
                _ProductType(
                    noun="Gaming Headset",
                    blurbs=(
                        "A gaming headset with a detachable boom microphone and 7.1 surround for team chat in multiplayer games.",
                    ),
                    features=(
                        "a noise-cancelling boom mic",
                        "memory-foam ear cushions",
                        "2.4 GHz wireless",
                        "cross-platform support for PC and consoles",
                    ),
                    variants=("Black", "White", "Red"),
                    price=(49.0, 249.0),
                    tags=("gaming headset", "multiplayer", "console"),
                    query="gaming headset",
                ),
                _ProductType(
                    noun="Ergonomic Gaming Chair",
                    blurbs=(
                        "An ergonomic gaming chair with lumbar support and a reclining backrest for marathon gaming sessions.",
                    ),
                    features=("4D armrests", "a memory-foam headrest", "breathable fabric", "a 135-degree recline"),
                    variants=("Black/Red", "Grey", "White", "Black"),
                    price=(179.0, 499.0),
                    tags=("gaming chair", "setup", "ergonomic"),
                    query="gaming chair",
                ),
                _ProductType(
                    noun="27-inch Gaming Monitor",
                    blurbs=(
                        "A fast 27-inch gaming monitor with a high refresh rate and 1 ms response time for smooth, tear-free gameplay.",
                    ),
                    features=("a QHD IPS panel", "adaptive sync", "HDR400", "a height-adjustable stand"),
                    variants=("165 Hz", "240 Hz", "OLED 360 Hz", "Curved"),
                    price=(199.0, 899.0),
                    tags=("gaming monitor", "pc gaming", "high refresh rate"),
                    query="gaming monitor",
                ),
            ),
        ),
        "outdoor": _CategorySpec(
            brands=("Trailhead", "Northwind", "Alpine Crest", "Wildgrove", "Basecamp", "Cairn", "Summit Ridge"),
            models=("Ranger", "Explorer", "Ridge", "Pioneer", "Nomad", "Timberline"),
            types=(
                _ProductType(
                    noun="2-Person Backpacking Tent",
                    blurbs=(
                        "A lightweight two-person backpacking tent with a freestanding frame, rainfly and two vestibules for camping trips.",
                        "A storm-worthy camping tent that pitches in minutes and keeps you dry on windy mountain nights.",
                    ),
                    features=("aluminium poles", "a waterproof rainfly", "two doors", "a 1.6 kg packed weight"),
                    variants=("Forest Green", "Orange", "Sand", "Sky Blue"),
                    price=(149.0, 499.0),
                    tags=("tent", "camping", "backpacking"),
                    query="backpacking tent",
                ),
                _ProductType(
                    noun="Down Sleeping Bag",
                    blurbs=(
                        "A mummy-shaped down sleeping bag rated to -5 C for cold nights at camp and in the mountains.",
                    ),
                    features=(
                        "800-fill responsibly sourced down",
                        "a draft collar",
                        "a compression stuff sack",
                        "a two-way zip",
                    ),
                    variants=("Regular", "Long", "Women's", "Ultralight"),
                    price=(99.0, 399.0),
                    tags=("sleeping bag", "camping", "backpacking"),
                    query="sleeping bag",
                ),
                _ProductType(
                    noun="45L Hiking Backpack",
                    blurbs=(
                        "A hiking backpack with an adjustable torso, padded hip belt and rain cover for multi-day treks.",
                    ),
                    features=(
                        "a ventilated back panel",
                        "a hydration sleeve",
                        "trekking pole loops",
                        "a detachable lid pocket",
                    ),
                    variants=("Olive", "Graphite", "Burnt Orange", "Teal"),
                    price=(79.0, 279.0),
                    tags=("hiking backpack", "hiking", "trekking"),
                    query="hiking backpack",
                ),
                _ProductType(
                    noun="Backpacking Stove",
                    blurbs=(
                        "A compact camping stove that boils water in three minutes for trail meals and coffee at camp.",
                    ),
                    features=("a piezo igniter", "a windscreen", "a folding pot support", "a 70-gram burner"),
                    variants=("Solo", "Duo Kit", "Cook System"),
                    price=(39.0, 149.0),
                    tags=("camping stove", "camp cooking", "backpacking"),
                    query="camping stove",
                ),
                _ProductType(
                    noun="Rechargeable Headlamp",
                    blurbs=(
                        "A bright rechargeable LED headlamp with a red night mode for camping, hiking and caving.",
                    ),
                    features=("a USB-C battery", "a tilting beam", "IPX7 waterproofing", "a lock mode"),
                    variants=("400 Lumens", "600 Lumens", "900 Lumens"),
                    price=(24.0, 79.0),
                    tags=("headlamp", "camping", "hiking"),
                    query="headlamp",
                ),
                _ProductType(
                    noun="Carbon Trekking Poles",
                    blurbs=(
                        "Collapsible carbon trekking poles that save your knees on steep hiking trails and river crossings.",
                    ),
                    features=("cork grips", "flick locks", "tungsten tips", "snow baskets"),
                    variants=("Pair", "Z-Fold Pair", "Women's Pair"),
                    price=(49.0, 169.0),
                    tags=("trekking poles", "hiking", "trekking"),
                    query="trekking poles",
                ),
                _ProductType(
                    noun="Squeeze Water Filter",
                    blurbs=(
                        "A squeeze water filter that removes bacteria and protozoa from streams and lakes on backcountry trips.",
                    ),
                    features=(
                        "a 0.1 micron hollow-fibre membrane",
                        "a 1 L collapsible pouch",
                        "a backflush syringe",
                        "a 100,000 L lifetime",
                    ),
                    variants=("Mini", "Standard", "Gravity Kit"),
                    price=(24.0, 89.0),
                    tags=("water filter", "backcountry", "camping"),
                    query="water filter for hiking",
                ),
            ),
        ),
        "beauty": _CategorySpec(
            brands=("Lumiere", "Velvet Bloom", "Aurelia", "Pure Petal", "Maison Rose", "Dewy Skin Co.", "Solenne"),
            models=("Hydra", "Radiance", "Glow", "Silk", "Botanica", "Velvet"),
            types=(
                _ProductType(
                    noun="Daily Moisturiser",
                    blurbs=(
                        "A lightweight daily face moisturiser with hyaluronic acid and ceramides that hydrates skin without feeling greasy.",
                        "A rich night cream that restores the skin barrier and leaves your complexion soft and plump by morning.",
                    ),
                    features=(
                        "hyaluronic acid",
                        "ceramides",
                        "squalane",
                        "a fragrance-free formula",
                        "vegan ingredients",
                    ),
                    variants=("50 ml", "For Dry Skin", "For Oily Skin", "Fragrance-Free"),
                    price=(14.0, 69.0),
                    tags=("moisturiser", "skincare", "hydration"),
                    query="moisturiser",
                ),
                _ProductType(
                    noun="Vitamin C Serum",
                    blurbs=(
                        "A brightening face serum with vitamin C and niacinamide that evens skin tone and fades dark spots.",
                    ),
                    features=("15% vitamin C", "niacinamide", "ferulic acid", "a dropper bottle"),
                    variants=("30 ml", "15 ml", "Sensitive Skin"),
                    price=(18.0, 89.0),
                    tags=("serum", "skincare", "vitamin c"),
                    query="vitamin c serum",
                ),
                _ProductType(
                    noun="Satin Lipstick",
                    blurbs=(
                        "A creamy satin lipstick with rich colour payoff and nourishing shea butter for all-day wear.",
                    ),
                    features=("jojoba oil", "a transfer-resistant finish", "a refillable case", "vitamin E"),
                    variants=("Ruby Red", "Nude Rose", "Berry Kiss", "Coral Crush", "Mauve"),
                    price=(12.0, 39.0),
                    tags=("lipstick", "makeup", "lips"),
                    query="red lipstick",
                ),
                _ProductType(
                    noun="Mineral Sunscreen SPF 50",
                    blurbs=(
                        "A mineral sunscreen with broad-spectrum SPF 50 protection that blends into the skin without a white cast.",
                    ),
                    features=(
                        "zinc oxide",
                        "reef-friendly filters",
                        "a tinted finish",
                        "water resistance for 80 minutes",
                    ),
                    variants=("50 ml", "Tinted", "Kids"),
                    price=(14.0, 45.0),
                    tags=("sunscreen", "spf", "skincare"),
                    query="sunscreen spf 50",
                ),
                _ProductType(
                    noun="Volumising Mascara",
                    blurbs=(
                        "A volumising, lengthening mascara that lifts and curls lashes without clumping or smudging.",
                    ),
                    features=(
                        "a curved brush",
                        "a waterproof formula",
                        "castor oil",
                        "an ophthalmologist-tested formula",
                    ),
                    variants=("Jet Black", "Brown Black", "Waterproof"),
                    price=(10.0, 32.0),
                    tags=("mascara", "makeup", "eyes"),
                    query="mascara",
                ),
                _ProductType(
                    noun="Gentle Foaming Cleanser",
                    blurbs=(
                        "A gentle foaming facial cleanser that removes makeup and impurities while keeping the skin barrier balanced.",
                    ),
                    features=("amino acid surfactants", "green tea extract", "a pH-balanced formula", "no sulphates"),
                    variants=("150 ml", "Travel Size", "For Sensitive Skin"),
                    price=(9.0, 35.0),
                    tags=("cleanser", "skincare", "face wash"),
                    query="face cleanser",
                ),
                _ProductType(
                    noun="Eyeshadow Palette",
                    blurbs=(
                        "A 12-shade eyeshadow palette of buttery mattes and shimmers for everyday and evening makeup looks.",
                    ),
                    features=("highly pigmented shades", "a mirror", "a dual-ended brush", "cruelty-free pigments"),
                    variants=("Warm Nudes", "Smoky", "Sunset", "Rose Gold"),
                    price=(19.0, 59.0),
                    tags=("eyeshadow", "makeup", "palette"),
                    query="eyeshadow palette",
                ),
            ),
        ),
        "toys": _CategorySpec(
            brands=("Brickle", "Tiny Town", "Wonderbox", "Playnest", "Jolly Fox", "Kiddo Labs", "Marble & Moss"),
            models=("Adventure", "Explorer", "Junior", "Deluxe", "Classic", "Mini"),
            types=(
                _ProductType(
                    noun="Building Blocks Set",
                    blurbs=(
                        "A colourful building blocks set with 500 interlocking bricks for kids to build castles, cars and spaceships.",
                    ),
                    features=("a storage tub", "picture instructions", "compatible baseplates", "minifigures"),
                    variants=("Ages 4+", "Ages 6+", "Ages 8+", "Space Station", "Castle"),
                    price=(19.0, 129.0),
                    tags=("building blocks", "construction toys", "kids"),
                    query="building blocks",
                ),
                _ProductType(
                    noun="Jigsaw Puzzle (1000 Pieces)",
                    blurbs=("A 1000-piece jigsaw puzzle with a vibrant illustrated scene for family puzzle nights.",),
                    features=("thick recycled board", "a poster guide", "precision-cut pieces", "a reusable box"),
                    variants=("Ocean Life", "Space Station", "Enchanted Forest", "Safari", "City at Night"),
                    price=(14.0, 34.0),
                    tags=("jigsaw puzzle", "family", "puzzles"),
                    query="jigsaw puzzle",
                ),
                _ProductType(
                    noun="Plush Toy",
                    blurbs=("A huggable soft plush toy made from super-soft fabric, perfect for bedtime cuddles.",),
                    features=("embroidered eyes", "machine-washable fabric", "a gift box", "safety-tested stitching"),
                    variants=("Bunny", "Dinosaur", "Unicorn", "Panda", "Fox"),
                    price=(12.0, 39.0),
                    tags=("plush toy", "stuffed animal", "kids"),
                    query="plush toy",
                ),
                _ProductType(
                    noun="Wooden Train Set",
                    blurbs=(
                        "A wooden train set with tracks, bridges and magnetic carriages that sparks imaginative play for toddlers.",
                    ),
                    features=("52 track pieces", "a battery-powered engine", "a wooden bridge", "a play mat"),
                    variants=("Starter", "Deluxe", "Mountain Tunnel"),
                    price=(29.0, 119.0),
                    tags=("train set", "wooden toys", "toddler"),
                    query="wooden train set",
                ),
                _ProductType(
                    noun="Remote Control Car",
                    blurbs=(
                        "A fast remote control car with all-terrain tyres and a rechargeable battery for backyard racing.",
                    ),
                    features=("a 2.4 GHz remote", "shock absorbers", "LED headlights", "two batteries"),
                    variants=("Monster Truck", "Rally", "Stunt", "Off-Road"),
                    price=(29.0, 99.0),
                    tags=("rc car", "remote control", "kids"),
                    query="remote control car",
                ),
                _ProductType(
                    noun="Wooden Dollhouse",
                    blurbs=("A three-storey wooden dollhouse with furniture and a family of dolls for pretend play.",),
                    features=("working doors", "a lift", "20 furniture pieces", "a doll family"),
                    variants=("Cottage", "Townhouse", "Beach House"),
                    price=(49.0, 189.0),
                    tags=("dollhouse", "pretend play", "kids"),
                    query="dollhouse",
                ),
                _ProductType(
                    noun="STEM Science Kit",
                    blurbs=(
                        "A hands-on STEM science kit with 30 experiments that teaches kids chemistry and physics through play.",
                    ),
                    features=("safety goggles", "an illustrated lab manual", "test tubes", "a crystal-growing set"),
                    variants=("Chemistry", "Robotics", "Volcano", "Crystal Lab"),
                    price=(24.0, 59.0),
                    tags=("science kit", "stem toys", "educational"),
                    query="science kit for kids",
                ),
            ),
        ),
    }
)

#: What shoppers type when looking for each category's products.
CATEGORY_QUERIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {category: tuple(t.query for t in spec.types) for category, spec in _SPECS.items()}
)


def _price(rng: random.Random, low: float, high: float) -> float:
    """A shop-like price in about [low, high], ending in .99, .49, .95 or .00; cheaper is likelier."""
    whole = int(low + (high - low) * rng.random() ** 1.6)
    cents = rng.choice((0.99, 0.99, 0.49, 0.95, 0.0))
    return round(whole + cents if whole + cents <= high else float(whole), 2)


def _category_items(category: str, spec: _CategorySpec, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """``count`` distinct items of one category, product types spread evenly."""
    # Types in spec order round-robin (earlier types get any extra slot), then shuffled.
    slots = [spec.types[i % len(spec.types)] for i in range(count)]
    rng.shuffle(slots)
    items: list[dict[str, Any]] = []
    seen_titles: set[str] = set()
    used_models: set[str] = set()
    for index in range(count):
        ptype = slots[index]
        for _ in range(1000):
            brand = rng.choice(spec.brands)
            models = ptype.models or spec.models
            model = rng.choice(models)
            variant = rng.choice(ptype.variants)
            title = spec.title_format.format(brand=brand, model=model, noun=ptype.noun, variant=variant)
            if title in seen_titles or (ptype.models and model in used_models):
                continue
            break
        else:  # pragma: no cover - the lists are far larger than ITEMS_PER_CATEGORY
            raise RuntimeError(f"cannot make {count} distinct {category} titles")
        seen_titles.add(title)
        used_models.add(model)
        a, b = rng.sample(ptype.features, 2)
        frame = rng.choice(spec.feature_frames)
        description = f"{rng.choice(ptype.blurbs)} {frame.format(a=a, b=b)}"
        extra = rng.randint(0, min(2, len(ptype.tags) - 1))
        tags = [ptype.tags[0], *rng.sample(ptype.tags[1:], extra)]
        if category not in tags:
            tags.append(category)
        items.append(
            {
                "item_id": f"{category}-{index + 1:03d}",
                "title": title,
                "description": description,
                "category": category,
                "price": _price(rng, *ptype.price),
                "image": None,
                "tags": tags[:4],
                "deleted": False,
                "ts": None,
                "in_stock": True,
            }
        )
    return items


def demo_catalog(seed: int = 7, images: bool = True) -> list[dict[str, Any]]:
    """The demo catalog: ``ITEMS_PER_CATEGORY`` items per category, ids like ``audio-017``.

    The text fields do not depend on ``images``; with ``images=True`` every item also
    gets a 64x64 PNG thumbnail as a ``data:image/png;base64,`` URI.

    >>> a, b = demo_catalog(3, images=False), demo_catalog(3, images=False)
    >>> a == b, a == demo_catalog(4, images=False)
    (True, False)
    >>> demo_catalog(images=True)[0]["image"][:22]
    'data:image/png;base64,'
    """
    catalog: list[dict[str, Any]] = []
    for position, category in enumerate(CATEGORIES):
        rng = random.Random(f"streamrec-demo-catalog:{seed}:{position}:{category}")
        catalog.extend(_category_items(category, _SPECS[category], rng, ITEMS_PER_CATEGORY))
    if images:
        for item in catalog:
            item["image"] = item_image(item["category"], f"{seed}:{item['item_id']}")
    return catalog


def items_by_category(catalog: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Item ids grouped by category, in catalog order; deleted items are left out.

    >>> items_by_category([{"item_id": "a", "category": "x"}, {"item_id": "b", "category": "y"},
    ...                    {"item_id": "c", "category": "x", "deleted": True}])
    {'x': ['a'], 'y': ['b']}
    """
    groups: dict[str, list[str]] = {}
    for item in catalog:
        if item.get("deleted"):
            continue
        groups.setdefault(str(item.get("category") or ""), []).append(str(item["item_id"]))
    return groups


# --- thumbnails -----------------------------------------------------------------------

#: Base hue (0-1) per category; motifs are drawn in this hue on a pale tint of it.
_HUES: Mapping[str, float] = MappingProxyType(
    {
        "audio": 0.62,  # blue
        "running": 0.08,  # orange
        "kitchen": 0.0,  # red
        "books": 0.10,  # brown (dark, low saturation below)
        "gaming": 0.78,  # purple
        "outdoor": 0.33,  # green
        "beauty": 0.92,  # pink
        "toys": 0.15,  # yellow
    }
)

_Draw = Callable[[Any, random.Random, tuple[int, int, int], tuple[int, int, int]], None]


def _shade(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _motif_audio(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Concentric rings: a speaker cone."""
    cx, cy = 32 + rng.randint(-6, 6), 32 + rng.randint(-6, 6)
    radius = rng.randint(22, 28)
    step = rng.randint(5, 7)
    for i, r in enumerate(range(radius, 3, -step)):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg if i % 2 == 0 else dark)


def _motif_running(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Slanted speed stripes."""
    slope = rng.uniform(0.5, 1.2)
    width = rng.randint(5, 8)
    for k in range(rng.randint(3, 5)):
        x0 = -20 + k * rng.randint(15, 20) + rng.randint(0, 6)
        draw.line((x0, 64, x0 + 64 * slope, 0), fill=fg if k % 2 == 0 else dark, width=width)


def _motif_kitchen(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """A gingham checkerboard."""
    cell = rng.choice((8, 10, 12, 16))
    offset = rng.randint(0, cell - 1)
    for y in range(-cell, 64, cell):
        for x in range(-cell, 64, cell):
            if ((x + y) // cell) % 2 == 0:
                draw.rectangle((x + offset, y + offset, x + offset + cell - 1, y + offset + cell - 1), fill=fg)
    draw.rectangle((0, 0, 63, 63), outline=dark, width=2)


def _motif_books(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Book spines on a shelf."""
    x = rng.randint(2, 8)
    shelf = 56
    while x < 58:
        width = rng.randint(6, 10)
        top = rng.randint(10, 28)
        draw.rectangle((x, top, min(x + width, 61), shelf), fill=fg if rng.random() < 0.6 else dark)
        draw.line((x + 1, top + 6, min(x + width, 61) - 1, top + 6), fill=(240, 230, 210), width=1)
        x += width + 2
    draw.rectangle((0, shelf + 1, 63, shelf + 4), fill=dark)


def _motif_gaming(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """A d-pad cross and four face buttons."""
    cx, cy = rng.randint(16, 22), 32 + rng.randint(-5, 5)
    arm, thick = rng.randint(10, 13), rng.randint(4, 5)
    draw.rectangle((cx - arm, cy - thick, cx + arm, cy + thick), fill=dark)
    draw.rectangle((cx - thick, cy - arm, cx + thick, cy + arm), fill=dark)
    bx, by = rng.randint(42, 48), cy
    r = rng.randint(3, 5)
    for dx, dy in ((0, -8), (8, 0), (0, 8), (-8, 0)):
        draw.ellipse((bx + dx - r, by + dy - r, bx + dx + r, by + dy + r), fill=fg)


def _motif_outdoor(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Mountain peaks or tents: triangles on a ground line."""
    ground = rng.randint(50, 58)
    for k in range(rng.randint(2, 3)):
        cx = rng.randint(8, 56)
        half = rng.randint(12, 22)
        peak = rng.randint(8, 28)
        draw.polygon(((cx - half, ground), (cx + half, ground), (cx, peak)), fill=fg if k % 2 == 0 else dark)
    draw.rectangle((0, ground, 63, 63), fill=dark)


def _motif_beauty(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Soft drops and ovals: a lipstick bullet and dabs of cream."""
    for _ in range(rng.randint(3, 5)):
        cx, cy = rng.randint(10, 54), rng.randint(10, 54)
        rx, ry = rng.randint(5, 10), rng.randint(8, 14)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fg)
    x = rng.randint(22, 36)
    draw.rectangle((x, 34, x + 10, 58), fill=dark)
    draw.polygon(((x, 34), (x + 10, 34), (x + 10, 22), (x, 28)), fill=fg)


def _motif_toys(draw: Any, rng: random.Random, fg: tuple[int, int, int], dark: tuple[int, int, int]) -> None:
    """Stacked building bricks with studs."""
    y = 56
    while y > 14:
        x = rng.randint(4, 20)
        width = rng.randint(20, 36)
        colour = fg if rng.random() < 0.6 else dark
        draw.rectangle((x, y - 10, x + width, y), fill=colour)
        for sx in range(x + 3, x + width - 3, 8):
            draw.rectangle((sx, y - 13, sx + 4, y - 10), fill=colour)
        y -= 14


_MOTIFS: Mapping[str, _Draw] = MappingProxyType(
    {
        "audio": _motif_audio,
        "running": _motif_running,
        "kitchen": _motif_kitchen,
        "books": _motif_books,
        "gaming": _motif_gaming,
        "outdoor": _motif_outdoor,
        "beauty": _motif_beauty,
        "toys": _motif_toys,
    }
)


def item_image(category: str, key: str) -> str:
    """A deterministic 64x64 PNG thumbnail as a ``data:image/png;base64,`` URI.

    The category fixes the hue and the motif; ``key`` varies shade, size and layout.
    Unknown categories get grey diagonal stripes.

    >>> item_image("audio", "7:audio-001") == item_image("audio", "7:audio-001")
    True
    """
    from PIL import Image, ImageDraw

    rng = random.Random(f"streamrec-demo-image:{category}:{key}")
    hue = _HUES.get(category, 0.0) + rng.uniform(-0.03, 0.03)
    saturation = 0.0 if category not in _HUES else (0.45 if category == "books" else 0.75)
    fg = _shade(hue, saturation + rng.uniform(-0.1, 0.15), rng.uniform(0.75, 0.95))
    dark = _shade(hue, saturation + 0.1, rng.uniform(0.35, 0.55))
    background = _shade(hue, 0.12 + rng.uniform(0.0, 0.1), rng.uniform(0.93, 1.0))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    _MOTIFS.get(category, _motif_running)(ImageDraw.Draw(image), rng, fg, dark)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
