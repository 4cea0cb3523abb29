"""Prompt sets for the UCF-101 protocol.

- `classnames` (default, ours): one caption per class made from its name, e.g.
  "PlayingGuitar" -> "A video of playing guitar.". Needs no file.
- `official`: the GPT-4 captions of the AnimateLCM authors (metrics/UCF101_prompts.yaml
  in G-U-N/AnimateLCM), read from a local path or its pinned public URL and verified by
  sha256. We do not redistribute that file.
- `vbench_standard`: VBench's own prompt suite (VBench_full_info.json, bundled with the
  vbench package), restricted to the prompts the asked-for dimensions read. Its
  "classes" are ids `vbench-NNN` (the prompt's place in the distinct-prompt list), so
  clip keys stay file-name safe while the prompt text goes to the model and to VBench.
  Each id also records which of the asked-for dimensions read it (``PromptSet.dimensions``),
  so the protocol can make more videos of one dimension's prompts (its pool, see
  bench/plan/protocol.py).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench.net.download import DownloadError, download_url
from common.errors import InputError, MissingInput
from common.files import sha256_file
from common.paths import not_a
from metrics.vbench_export import full_info_path, standard_prompts
from metrics.vbench_protocol import STANDARD_PROMPT_SET
from models.tiny import clip_tokenizer
from models.weights import hub_offline

UCF101_CLASSES: List[str] = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards", "BlowDryHair", "BlowingCandles", "BodyWeightSquats", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth", "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming", "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut", "HammerThrow", "Hammering", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump", "HorseRace", "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking", "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor", "Nunchucks", "ParallelBars", "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano", "PlayingSitar", "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps", "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard", "Shotput", "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty", "StillRings", "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi", "TennisSwing", "ThrowDiscus", "TrampolineJumping", "Typing", "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups", "WritingOnBoard", "YoYo"]

# Commit and digest belong together: the file at c7e8a60 (its latest change) hashes to
# 62a73e32...; the earlier c741a89 differs in its header comment (sha256 47ec7b5e...).
OFFICIAL_CAPTIONS_COMMIT = "c7e8a6027167b8e24a66b17737da4151072dadcd"
OFFICIAL_CAPTIONS_URL = ("https://raw.githubusercontent.com/G-U-N/AnimateLCM/"
                         f"{OFFICIAL_CAPTIONS_COMMIT}/metrics/UCF101_prompts.yaml")
OFFICIAL_CAPTIONS_SHA256 = "62a73e321bcf3f7ab5cfc51e3b0b2ac7f4ce81e90d4728d935d8ec84d41ebbb9"


@dataclass(frozen=True)
class PromptSet:
    name: str
    classes: List[str]
    captions: List[str]
    sha256: str          # of the source file, or of the generated captions
    # vbench_standard: class id -> the run's VBench dimensions that read that prompt (empty otherwise)
    dimensions: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    def subset(self, classes: Optional[List[str]] = None, num_classes: Optional[int] = None) -> "PromptSet":
        picked = list(self.classes)
        if classes:
            unknown = [c for c in classes if c not in self.classes]
            if unknown:
                kind = "UCF-101 class(es)" if self.classes[:1] == UCF101_CLASSES[:1] else \
                    f"class(es) of prompt set '{self.name}'"
                raise InputError(f"Unknown {kind} {unknown}. Names look like {self.classes[:3]}.")
            picked = list(classes)
        if num_classes is not None:
            if not 1 <= num_classes <= len(picked):
                raise InputError(f"num_classes={num_classes} must be between 1 and {len(picked)}.")
            picked = picked[:num_classes]
        index = {c: i for i, c in enumerate(self.classes)}
        return PromptSet(self.name, picked, [self.captions[index[c]] for c in picked], self.sha256,
                         {c: self.dimensions[c] for c in picked if c in self.dimensions})


def _words(camel: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", camel).lower()


def classname_captions() -> PromptSet:
    captions = [f"A video of {_words(c)}." for c in UCF101_CLASSES]
    digest = hashlib.sha256("\n".join(captions).encode()).hexdigest()
    return PromptSet("classnames", list(UCF101_CLASSES), captions, digest)


def read_caption_text(data: bytes, source: str) -> str:
    """The caption file's text; a byte-order mark or bytes that are not UTF-8 are named."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise InputError(f"{source} starts with a UTF-8 byte-order mark (BOM), which would become part of the first "
                         f"class name. Save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise InputError(f"{source} is not UTF-8: byte 0x{data[err.start]:02x} on line {line} (a latin-1 or "
                         f"Windows-1252 file?). Re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > NEW.") from None


def parse_caption_file(text: str, source: str = "caption file") -> PromptSet:
    """`ClassName: caption.` per line; lines starting with # and blank lines are skipped."""
    classes, captions = [], []
    first_line: dict = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, caption = line.partition(":")
        if not sep or not caption.strip() or " " in name.strip():
            raise InputError(f"{source} line {lineno}: expected 'ClassName: caption.', got '{line[:80]}'.")
        name = name.strip()
        if name in first_line:
            raise InputError(f"{source} line {lineno}: class '{name}' appears again (first on line "
                             f"{first_line[name]}). Keep one caption per class.")
        first_line[name] = lineno
        classes.append(name)
        captions.append(caption.strip())
    if sorted(classes) != sorted(UCF101_CLASSES):
        missing = sorted(set(UCF101_CLASSES) - set(classes))
        extra = sorted(set(classes) - set(UCF101_CLASSES))
        raise InputError(f"{source} has {len(classes)} classes, expected the 101 UCF-101 classes "
                         f"(missing: {missing[:5]}, unknown: {extra[:5]}). Is it the UCF-101 caption file?")
    digest = hashlib.sha256(text.encode()).hexdigest()
    order = {c: i for i, c in enumerate(classes)}
    return PromptSet("official", list(UCF101_CLASSES), [captions[order[c]] for c in UCF101_CLASSES], digest)


def official_captions(path: Optional[str] = None, cache_dir: Optional[str] = None,
                      offline: Optional[bool] = None) -> PromptSet:
    """The official caption file from `path`, or from the cache, or downloaded from
    its pinned URL (not when offline). Always checked against the pinned sha256."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise MissingInput(f"prompt file {not_a(file, 'file')}. Fix protocol.prompt_file.")
    else:
        file = Path(cache_dir or Path.home() / ".cache" / "lcmbench").expanduser() / "UCF101_prompts.yaml"
        if not file.is_file():
            offline = offline if offline is not None else hub_offline()
            if offline:
                raise MissingInput(
                    f"The official UCF-101 caption file is not cached at {file} and offline mode is on. "
                    f"Download {OFFICIAL_CAPTIONS_URL} and pass protocol.prompt_file=PATH.")
            try:
                download_url(OFFICIAL_CAPTIONS_URL, file, OFFICIAL_CAPTIONS_SHA256)
            except DownloadError as err:   # the caller's "missing file" path: one line, what to do
                raise MissingInput(f"{err} Or download it by hand and pass protocol.prompt_file=PATH.") from None
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != OFFICIAL_CAPTIONS_SHA256:
        raise InputError(f"{file} has sha256 {digest}, but the official caption file (commit "
                         f"{OFFICIAL_CAPTIONS_COMMIT[:10]}) has {OFFICIAL_CAPTIONS_SHA256}. Use the official "
                         f"file, or prompt_set=file to run with your own captions.")
    return parse_caption_file(read_caption_text(data, str(file)), str(file))


def vbench_prompt_set(dimensions: Optional[List[str]] = None) -> PromptSet:
    """VBench's standard prompts (distinct, in file order) that any of ``dimensions``
    reads (all 944 when None), each with the dimensions among ``dimensions`` that read it.
    The sha256 is that of the bundled VBench_full_info.json."""
    entries = standard_prompts(distinct=True)
    ids = [f"vbench-{i:03d}" for i in range(len(entries))]
    if dimensions:
        known = sorted({d for e in entries for d in e["dimensions"]})
        unknown = [d for d in dimensions if d not in known]
        if unknown:
            raise InputError(f"Unknown VBench dimension(s) {unknown} for the standard prompt suite; "
                             f"dimensions are {', '.join(known)}.")
        picked = [(i, e) for i, e in zip(ids, entries) if set(e["dimensions"]) & set(dimensions)]
    else:
        picked = list(zip(ids, entries))
    digest = sha256_file(full_info_path())
    reads = {i: tuple(d for d in e["dimensions"] if not dimensions or d in dimensions) for i, e in picked}
    return PromptSet(STANDARD_PROMPT_SET, [i for i, _ in picked], [e["prompt"] for _, e in picked], digest, reads)


PROMPT_SETS = ("classnames", "official", "file", STANDARD_PROMPT_SET)


def load_prompt_set(name: str, path: Optional[str] = None, cache_dir: Optional[str] = None,
                    vbench_dimensions: Optional[List[str]] = None) -> PromptSet:
    """`classnames`, `official` (pinned GPT-4 captions), `file` (your own caption file,
    same format, not pinned) or `vbench_standard` (VBench's prompts for the given dimensions)."""
    if name == "classnames":
        return classname_captions()
    if name == STANDARD_PROMPT_SET:
        return vbench_prompt_set(list(vbench_dimensions) if vbench_dimensions else None)
    if name == "official":
        return official_captions(path, cache_dir)
    if name == "file":
        if not path:
            raise InputError("prompt_set=file needs protocol.prompt_file=PATH.")
        file = Path(path).expanduser()
        if not file.is_file():
            raise MissingInput(f"prompt file {not_a(file, 'file')}. Fix protocol.prompt_file.")
        ps = parse_caption_file(read_caption_text(file.read_bytes(), str(file)), str(file))
        return PromptSet("file:" + file.name, ps.classes, ps.captions, ps.sha256)
    raise InputError(f"Unknown prompt set '{name}': use {', '.join(PROMPT_SETS)}.")


CLIP_MAX_TOKENS = 77   # SD1.5's text encoder and CLIPSIM's tokenizer both cut captions here


def overlong_captions(prompt_set: PromptSet, cache_dir: str) -> List[tuple]:
    """(class, tokens) of every caption longer than CLIP's 77 tokens (start and end
    tokens included): the text encoders see only its first 77."""
    tok = clip_tokenizer(cache_dir)
    out = []
    for cls, caption in zip(prompt_set.classes, prompt_set.captions):
        n = len(tok(caption, truncation=False)["input_ids"])
        if n > CLIP_MAX_TOKENS:
            out.append((cls, n))
    return out
