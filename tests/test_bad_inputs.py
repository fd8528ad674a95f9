"""Every bad input a user can give ends in one line naming the culprit: exit status 1 (2 for a wrong command
line) from the command, a ValueError / OSError from the Python entry points, and no traceback.

One table: each case names how to run it (command-line arguments, or a Python callable), what must come out
(an exit status or an exception type) and a piece of the message that names the file, key or argument.
Arguments and callables get the folder of tiny models and bad files that ``folder`` builds once."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import wave
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import small_classifier

import omniperceiver as op
from omniperceiver import data, zoo
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.cli import main
from omniperceiver.core import ARConfig
from omniperceiver.data.folders import read_points
from omniperceiver.inference import fill_masks, generate
from omniperceiver.interop.transformers import convert_transformers
from omniperceiver.media import load_image
from omniperceiver.train.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = os.name == "posix" and os.geteuid() == 0
AS_ROOT = pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
NO_SYSFS = pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's read-only /sys")


def png_header(width: int, height: int) -> bytes:
    """A PNG file that announces width x height pixels and holds almost none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def write_wav(path: Path, samples: int) -> Path:
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(b"\1\0" * samples)
    return path


def edit_config(source: Path, target: Path, edit: Callable[[dict], Any]) -> None:
    """Copy the model directory ``source`` to ``target`` with config.json changed by ``edit``."""
    target.mkdir()
    (target / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(edit(config)))


def class_folder(root: Path, suffix: str, good: Callable[[Path], Any], bad: Callable[[Path], Any]) -> Path:
    """Two class subfolders of two files each; the last file is ``bad``."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            good(root / name / f"{i}{suffix}")
    bad(root / "b" / f"bad{suffix}")
    return root


def transformers_config(path: Path, **fields: Any) -> Path:
    path.mkdir()
    small = dict(num_latents=4, d_latents=8, d_model=8, num_self_attends_per_block=1, max_position_embeddings=8)
    heads = dict(num_self_attention_heads=1, num_cross_attention_heads=1)
    architecture = {"architectures": ["PerceiverForSequenceClassification"]}
    config = {"model_type": "perceiver", **architecture, **small, **heads, **fields}
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Tiny models (text classifier, masked language model, image classifier, optical flow, Perceiver AR) and
    bad files of every kind."""
    d = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    zoo.create("text-classifier", reduced=True).save_pretrained(d / "text")
    zoo.create("language-perceiver", reduced=True).save_pretrained(d / "language")
    zoo.create("vision-perceiver-conv", reduced=True).save_pretrained(d / "image")
    zoo.create("optical-flow-perceiver", reduced=True).save_pretrained(d / "flow")
    zoo.create("multimodal-perceiver", reduced=True).save_pretrained(d / "multimodal")
    small_classifier().save_pretrained(d / "array")
    ar = ARConfig(channels=16, num_latents=4, num_heads=2, num_self_attention_layers=1)
    op.PerceiverARConfig(vocab_size=262, max_seq_len=16, ar=ar, pad_id=0).build().save_pretrained(d / "ar")

    weights = (d / "array" / "model.safetensors").read_bytes()
    for name, content in {"truncated": weights[: len(weights) // 2], "empty": b"", "garbage": b"\0" * 64}.items():
        edit_config(d / "array", d / f"weights-{name}", lambda config: config)
        (d / f"weights-{name}" / "model.safetensors").write_bytes(content)
    edit_config(d / "array", d / "config-list", lambda config: [1, 2])
    edit_config(d / "ar", d / "config-tied-no", lambda config: {**config, "tied_output": "no"})
    edit_config(d / "ar", d / "config-vocab-true", lambda config: {**config, "vocab_size": True})
    edit_config(d / "ar", d / "config-missing", lambda config: {k: v for k, v in config.items() if k != "max_seq_len"})
    edit_config(d / "ar", d / "config-not-json", lambda config: config)
    (d / "config-not-json" / "config.json").write_text("{not json")

    transformers_config(d / "hf-id2label", id2label={"0": "a", "2": "b"})
    transformers_config(d / "hf-num-labels", num_labels=None)
    transformers_config(d / "hf-architecture", architectures=["PerceiverForSomethingElse"])
    hf_bin = transformers_config(d / "hf-bin-truncated", id2label={"0": "a", "1": "b"})
    (hf_bin / "pytorch_model.bin").write_bytes(b"PK\3\4 truncated")
    (d / "empty-folder").mkdir()
    (d / "afile").write_text("a file, not a folder")
    (d / "outputs").mkdir()
    (d / "outputs" / "kept.txt").write_text("an existing folder's content")
    (d / "read-only").mkdir()
    (d / "read-only").chmod(0o555)

    (d / "notes.txt").write_text("not an image")
    (d / "latin1.txt").write_bytes("caf\xe9 [MASK]".encode("latin-1"))
    (d / "big.png").write_bytes(png_header(10_000, 10_000))
    (d / "broken.png").write_bytes(png_header(64, 64)[:40])
    np.random.seed(0)
    from PIL import Image

    for name, shape in {"f1.png": (12, 16, 3), "f2.png": (12, 16, 3), "f3.png": (14, 16, 3)}.items():
        Image.fromarray(np.random.randint(0, 256, shape, dtype=np.uint8)).save(d / name)
    np.savez(d / "no-audio.npz", video=np.zeros((2, 16, 16, 3), np.uint8))

    (d / "syntax.yaml").write_text("dataset: digits\nmodel: [1, 2\n")
    (d / "python-tag.yaml").write_text('dataset: !!python/object/apply:os.system ["echo owned"]\n')
    (d / "list.yaml").write_text("- dataset\n- digits\n")
    (d / "latin1.yaml").write_bytes("dataset: caf\xe9\n".encode("latin-1"))
    (d / "csv-on-folder.yaml").write_text(f"dataset: csv-series\ndata_path: {d / 'empty-folder'}\n")
    class_folder(d / "clouds", ".off", lambda p: p.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"), Path.touch)
    (d / "clouds.yaml").write_text(f"dataset: point-cloud-folder\ndata_path: {d / 'clouds'}\n")
    truncate = lambda p: p.write_bytes(write_wav(p, 100).read_bytes()[:-60])  # noqa: E731
    class_folder(d / "truncated-wavs", ".wav", lambda p: write_wav(p, 100), truncate)
    class_folder(d / "empty-wavs", ".wav", lambda p: write_wav(p, 100), lambda p: write_wav(p, 0))
    class_folder(d / "header-wavs", ".wav", lambda p: write_wav(p, 100), lambda p: p.write_bytes(b"RIFF"))
    (d / "wavs.yaml").write_text(f"dataset: audio-folder\ndata_path: {d / 'truncated-wavs'}\n")
    latin1 = lambda p: p.write_bytes(b"caf\xe9")  # noqa: E731
    class_folder(d / "texts", ".txt", lambda p: p.write_text("hello"), latin1)
    class_folder(d / "images", ".png", lambda p: p.write_bytes((d / "f1.png").read_bytes()), latin1)
    (d / "ragged.csv").write_text("a,b,label\n1,2,x\n3,y\n")
    (d / "short.off").write_text("OFF\n3 1 0\n0 0 0\n")

    run = d / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "recipe.yaml").write_text("dataset: digits\ntraining:\n  epochs: 1\n")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"\x80\x04 not a pickle")
    empty_run = d / "empty-run"
    (empty_run / "checkpoints").mkdir(parents=True)
    (empty_run / "recipe.yaml").write_text((run / "recipe.yaml").read_text())
    (empty_run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (d / "run-bad-recipe").mkdir()
    (d / "run-bad-recipe" / "recipe.yaml").write_text("dataset: [digits\n")
    (d / "run-no-model").mkdir()
    (d / "run-no-model" / "recipe.yaml").write_text("dataset: digits\n")
    yield d
    (d / "read-only").chmod(0o755)


@dataclasses.dataclass(frozen=True)
class Case:
    """``run``: command-line arguments ("{d}" is the fixture folder) or a callable of that folder;
    ``expect``: the exit status, or the exception type(s); ``culprit``: a piece of the message."""

    id: str
    run: list[str] | Callable[[Path], Any]
    expect: int | type[BaseException] | tuple[type[BaseException], ...]
    culprit: str
    marks: tuple = ()


def model(name: str) -> Callable[[Path], Any]:
    return lambda d: op.from_pretrained(d / name)


# fmt: off
CASES = [
    # info
    Case("info-missing-folder", ["info", "{d}/nothing-here"], 1, "nothing-here does not exist"),
    Case("info-empty-folder", ["info", "{d}/empty-folder"], 1, "config.json is missing"),
    Case("info-a-file", ["info", "{d}/afile"], 1, "afile is a file, not a model directory"),
    Case("info-truncated-safetensors", ["info", "{d}/weights-truncated"], 1, "model.safetensors"),
    Case("info-empty-safetensors", ["info", "{d}/weights-empty"], 1, "model.safetensors"),
    Case("info-garbage-safetensors", ["info", "{d}/weights-garbage"], 1, "model.safetensors"),
    Case("info-config-json-list", ["info", "{d}/config-list"], 1, "config.json"),
    Case("info-config-not-json", ["info", "{d}/config-not-json"], 1, "config.json"),
    Case("info-tied-output-no", ["info", "{d}/config-tied-no"], 1, "tied_output"),
    Case("info-vocab-size-true", ["info", "{d}/config-vocab-true"], 1, "vocab_size"),
    Case("info-missing-field", ["info", "{d}/config-missing"], 1, "max_seq_len"),
    Case("info-hf-id2label-gap", ["info", "{d}/hf-id2label"], 1, "id2label must have the ids 0 .. 1, got ['0', '2']"),
    Case("info-hf-num-labels-null", ["info", "{d}/hf-num-labels"], 1, "num_labels must be a positive"),
    Case("info-hf-architecture", ["info", "{d}/hf-architecture"], 1, "PerceiverForSomethingElse"),
    Case("info-hf-truncated-bin", ["info", "{d}/hf-bin-truncated"], 1, "pytorch_model.bin"),
    Case("info-no-folder-argument", ["info"], 2, "MODEL_DIR"),
    # convert
    Case("convert-onto-a-file", ["convert", "hf", "{d}/array", "{d}/afile"], 1, "afile already exists"),
    Case("convert-onto-a-model", ["convert", "hf", "{d}/array", "{d}/outputs"], 1, "outputs already exists"),
    Case("convert-under-a-file", ["convert", "hf", "{d}/array", "{d}/afile/out"], 1, "afile/out"),
    Case("convert-read-only", ["convert", "hf", "{d}/array", "{d}/read-only/out"], 1, "read-only", (AS_ROOT,)),
    Case("convert-missing-source", ["convert", "hf", "{d}/nothing-here", "{d}/new"], 1, "nothing-here"),
    Case("convert-hf-id2label-gap", ["convert", "hf", "{d}/hf-id2label", "{d}/new"], 1, "id2label"),
    Case("convert-unknown-format", ["convert", "onnx", "{d}/array", "{d}/new"], 2, "'onnx'"),
    # predict
    Case("predict-top-negative", ["predict", "{d}/image", "{d}/f1.png", "--top", "-1"], 2, "--top"),
    Case("predict-top-not-a-number", ["predict", "{d}/image", "{d}/f1.png", "--top", "five"], 2, "'five'"),
    Case("predict-no-input", ["predict", "{d}/image"], 2, "INPUT"),
    Case("predict-missing-text-file", ["predict", "{d}/text", "{d}/no-such.txt"], 1, "no-such.txt: no such file"),
    Case("predict-text-not-utf8", ["predict", "{d}/language", "{d}/latin1.txt"], 1, "latin1.txt: not UTF-8"),
    Case("predict-text-too-long", ["predict", "{d}/text", "--text", "x" * 100], 1, "more than max_length=48"),
    Case("predict-mask-huge", ["predict", "{d}/language", "--text", "[MASK*10000000]"], 1, "10,000,002 tokens"),
    Case("predict-mask-zero", ["predict", "{d}/language", "--text", "a[MASK*0]"], 1, "[MASK*0] masks no bytes"),
    Case("predict-no-mask", ["predict", "{d}/language", "--text", "plain"], 1, "plain: the text has no [MASK]"),
    Case("predict-text-for-images", ["predict", "{d}/image", "--text", "a cat"], 1, "--text is for text models"),
    Case("predict-not-an-image", ["predict", "{d}/image", "{d}/notes.txt"], 1, "notes.txt': not a recognized image"),
    Case("predict-missing-image", ["predict", "{d}/image", "{d}/none.png"], 1, "none.png': No such file"),
    Case("predict-image-is-a-folder", ["predict", "{d}/image", "{d}/empty-folder"], 1, "empty-folder': Is a directory"),
    Case("predict-huge-image", ["predict", "{d}/image", "{d}/big.png"], 1, "big.png': 10000x10000"),
    Case("predict-broken-image", ["predict", "{d}/image", "{d}/broken.png"], 1, "broken.png"),
    Case("predict-flow-odd-frames", ["predict", "{d}/flow", "{d}/f1.png"], 1, "frames in pairs"),
    Case("predict-flow-output-a-file",
         ["predict", "{d}/flow", "{d}/f1.png", "{d}/f2.png", "--output-dir", "{d}/afile"], 1, "afile is a file"),
    Case("predict-flow-output-read-only",
         ["predict", "{d}/flow", "{d}/f1.png", "{d}/f2.png", "--output-dir", "{d}/read-only"], 1, "read-only",
         (AS_ROOT,)),
    Case("predict-flow-frames-differ", ["predict", "{d}/flow", "{d}/f1.png", "{d}/f3.png"], 1,
         "the frames differ in size"),
    Case("predict-clip-without-audio", ["predict", "{d}/multimodal", "{d}/no-audio.npz"], 1,
         "no-audio.npz: expected a .npz file with arrays 'video' and 'audio'"),
    Case("predict-clip-not-npz", ["predict", "{d}/multimodal", "{d}/notes.txt"], 1, "notes.txt: expected a .npz"),
    Case("predict-no-task", ["predict", "{d}/array", "{d}/f1.png"], 1, "task for a PerceiverIO of ArrayInputAdapter"),
    # train
    Case("train-missing-recipe", ["train", "{d}/no-recipe.yaml"], 1, "no recipe file"),
    Case("train-yaml-syntax", ["train", "{d}/syntax.yaml"], 1, "syntax.yaml, line 3 column 1: invalid YAML"),
    Case("train-python-tag", ["train", "{d}/python-tag.yaml"], 1, "python-tag.yaml, line 1 column 10"),
    Case("train-recipe-list", ["train", "{d}/list.yaml"], 1, "list.yaml: expected a mapping"),
    Case("train-recipe-not-utf8", ["train", "{d}/latin1.yaml"], 1, "latin1.yaml: not UTF-8"),
    Case("train-override-into-value", ["train", "digits", "training.epochs.x=1"], 1, "'training.epochs.x=1'"),
    Case("train-override-no-equals", ["train", "digits", "training.epochs"], 1, "'training.epochs'"),
    Case("train-override-bad-yaml", ["train", "digits", "training.epochs=[1"], 1, "override 'training.epochs=[1'"),
    Case("train-override-unknown-key", ["train", "digits", "model.bogus=1"], 1, "model.bogus: unknown key"),
    Case("train-override-wrong-type", ["train", "digits", "training.epochs=ten"], 1, "training.epochs: expected int"),
    Case("train-override-bool-for-int", ["train", "digits", "training.epochs=true"], 1, "training.epochs"),
    Case("train-override-zero-epochs", ["train", "digits", "training.epochs=0"], 1, "epochs=0 is invalid"),
    Case("train-unknown-dataset", ["train", "digits", "dataset=nope"], 1, "dataset='nope'"),
    Case("train-folder-task-without-folder", ["train", "digits", "dataset=image-folder"], 1,
         "dataset='image-folder' takes a folder"),
    Case("train-missing-data-folder", ["train", "digits", "dataset=image-folder", "data_path={d}/nothing-here"], 1,
         "nothing-here is not a folder"),
    Case("train-csv-series-on-folder", ["train", "{d}/csv-on-folder.yaml"], 1, "empty-folder is a folder"),
    Case("train-empty-off", ["train", "{d}/clouds.yaml", "--output-dir", "{d}/new-run"], 1, "bad.off"),
    Case("train-truncated-wav", ["train", "{d}/wavs.yaml", "--output-dir", "{d}/new-run"], 1, "bad.wav: truncated"),
    Case("train-corrupt-checkpoint", ["train", "{d}/run/recipe.yaml", "--output-dir", "{d}/run", "--resume"], 1,
         "last.ckpt"),
    Case("train-empty-checkpoint",
         ["train", "{d}/run/recipe.yaml", "--output-dir", "{d}/empty-run", "--resume"], 1, "last.ckpt"),
    Case("train-resume-nothing", ["train", "digits", "--output-dir", "{d}/nothing-here", "--resume"], 1,
         "nothing-here"),
    Case("train-output-a-file", ["train", "{d}/run/recipe.yaml", "--output-dir", "{d}/afile"], 1, "afile"),
    # evaluate
    Case("evaluate-missing-run", ["evaluate", "{d}/nothing-here"], 1, "recipe.yaml is missing"),
    Case("evaluate-bad-recipe", ["evaluate", "{d}/run-bad-recipe"], 1, "recipe.yaml, line 2"),
    Case("evaluate-no-model", ["evaluate", "{d}/run-no-model"], 1, "run-no-model/model"),
    # generate
    Case("generate-negative-tokens", ["generate", "{d}/ar", "--prompt", "a", "--max-new-tokens", "-1"], 2,
         "--max-new-tokens: expected an integer >= 0, got '-1'"),
    Case("generate-top-k-zero", ["generate", "{d}/ar", "--prompt", "a", "--top-k", "0"], 2, "--top-k"),
    Case("generate-top-p-above-1", ["generate", "{d}/ar", "--prompt", "a", "--top-p", "1.5"], 1, "top_p=1.5"),
    Case("generate-negative-temperature", ["generate", "{d}/ar", "--prompt", "a", "--temperature", "-1"], 1,
         "temperature=-1.0"),
    Case("generate-not-an-ar-model", ["generate", "{d}/image", "--prompt", "a"], 1, "not a PerceiverAR"),
    Case("generate-missing-model", ["generate", "{d}/nothing-here", "--prompt", "a"], 1, "nothing-here"),
    Case("generate-no-prompt", ["generate", "{d}/ar"], 2, "--prompt"),
    Case("generate-tokens-not-a-number", ["generate", "{d}/ar", "--prompt", "a", "--max-new-tokens", "x"], 2, "'x'"),
    # demo
    Case("demo-output-a-file", ["demo", "--quick", "--output-dir", "{d}/afile"], 1, "afile is a file"),
    Case("demo-output-under-a-file", ["demo", "--quick", "--output-dir", "{d}/afile/demo"], 1, "afile/demo"),
    Case("demo-output-read-only", ["demo", "--quick", "--output-dir", "{d}/read-only/demo"], 1, "read-only",
         (AS_ROOT,)),
    Case("demo-output-in-sysfs", ["demo", "--quick", "--output-dir", "/sys/omniperceiver-demo"], 1,
         "cannot create the folder /sys/omniperceiver-demo", (NO_SYSFS,)),
    Case("demo-unknown-option", ["demo", "--fast"], 2, "--fast"),
    # the command line itself
    Case("no-command", [], 2, "a COMMAND is needed"),
    Case("unknown-command", ["fly"], 2, "'fly'"),
    # calibrate
    Case("calibrate-unknown-device", ["calibrate", "--device", "bogus"], 2, "'bogus'"),
    Case("calibrate-missing-device", ["calibrate", "--device", "xpu"], 2, "no xpu device"),
    Case("calibrate-negative-budget", ["calibrate", "--budget", "-1"], 2, "'-1'"),
    # Python: from_pretrained
    Case("from-pretrained-missing", lambda d: op.from_pretrained(d / "nothing-here"), FileNotFoundError,
         "nothing-here"),
    Case("from-pretrained-truncated-safetensors", model("weights-truncated"), ValueError, "model.safetensors"),
    Case("from-pretrained-tied-output-no", model("config-tied-no"), ValueError, "tied_output"),
    Case("from-pretrained-config-list", model("config-list"), ValueError, "config.json"),
    Case("from-pretrained-wrong-class", lambda d: op.PerceiverAR.from_pretrained(d / "image"), ValueError,
         "not a PerceiverAR"),
    Case("convert-transformers-num-labels", lambda d: convert_transformers(d / "hf-num-labels"), ValueError,
         "num_labels"),
    # Python: model forward
    Case("text-batch-of-0", lambda d: op.from_pretrained(d / "text")(torch.zeros(0, 4, dtype=torch.long)),
         ValueError, "(0, 4, 32)"),
    Case("text-of-length-0", lambda d: op.from_pretrained(d / "text")(torch.zeros(2, 0, dtype=torch.long)),
         ValueError, "(2, 0, 32)"),
    Case("text-float-ids", lambda d: op.from_pretrained(d / "text")(torch.zeros(1, 4)), ValueError,
         "integer dtype"),
    Case("text-ids-out-of-range", lambda d: op.from_pretrained(d / "text")(torch.full((1, 4), 300)), ValueError,
         "[0, 262)"),
    Case("image-float64", lambda d: op.from_pretrained(d / "image")(torch.rand(1, 3, 32, 32, dtype=torch.float64)),
         ValueError, "x is torch.float64, the model's weights are torch.float32"),
    Case("image-uint8", lambda d: op.from_pretrained(d / "image")(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)),
         ValueError, "torch.uint8"),
    Case("image-batch-of-0", lambda d: op.from_pretrained(d / "image")(torch.rand(0, 3, 32, 32)), ValueError,
         "(B, M, C) = (0,"),
    Case("image-wrong-channels", lambda d: op.from_pretrained(d / "image")(torch.rand(1, 1, 32, 32)), ValueError,
         "C=3"),
    Case("ar-batch-of-0", lambda d: op.from_pretrained(d / "ar")(torch.zeros(0, 3, dtype=torch.long)), ValueError,
         "shape (0, 3)"),
    Case("ar-too-long", lambda d: op.from_pretrained(d / "ar")(torch.zeros(1, 17, dtype=torch.long)), ValueError,
         "max_seq_len=16"),
    # Python: inference
    Case("generate-no-prompts", lambda d: generate(op.from_pretrained(d / "ar"), [], 2), ValueError,
         "at least one prompt"),
    Case("generate-empty-prompt", lambda d: generate(op.from_pretrained(d / "ar"), [[1], []], 2), ValueError,
         "prompt 1"),
    Case("generate-id-out-of-range", lambda d: generate(op.from_pretrained(d / "ar"), [[300]], 2), ValueError,
         "got values in [300, 300]"),
    Case("fill-masks-huge", lambda d: fill_masks(op.from_pretrained(d / "language"), "[MASK*10000000]"),
         ValueError, "10,000,002 tokens"),
    Case("tokenizer-too-long", lambda d: ByteTokenizer().batch(["abc"], max_length=4), ValueError,
         "max_length=4"),
    # Python: media and data loaders
    Case("load-image-huge", lambda d: load_image(d / "big.png"), ValueError, "max_pixels=33,554,432"),
    Case("load-image-missing", lambda d: load_image(d / "none.png"), ValueError, "none.png"),
    Case("csv-series-on-folder", lambda d: data.csv_series(d, label_column="label"), IsADirectoryError,
         "is a folder"),
    Case("csv-series-ragged", lambda d: data.csv_series(d / "ragged.csv", label_column="label"), ValueError,
         "ragged.csv, line 3: fewer fields"),
    Case("csv-series-missing", lambda d: data.csv_series(d / "none.csv", label_column="label"), FileNotFoundError,
         "none.csv"),
    Case("point-cloud-empty-off", lambda d: data.point_cloud_folder(d / "clouds", points=2), ValueError,
         "bad.off: an .off file starts with OFF"),
    Case("point-cloud-short-off", lambda d: read_points(d / "short.off"), ValueError,
         "announces 3 points, the file holds 1"),
    Case("wav-truncated", lambda d: data.wav_folder(d / "truncated-wavs"), ValueError, "bad.wav: truncated"),
    Case("wav-zero-length", lambda d: data.wav_folder(d / "empty-wavs"), ValueError, "bad.wav: the clip holds no"),
    Case("wav-header-only", lambda d: data.wav_folder(d / "header-wavs"), ValueError, "bad.wav: the file ends"),
    Case("text-folder-not-utf8", lambda d: data.text_folder(d / "texts"), ValueError, "bad.txt"),
    Case("image-folder-not-an-image", lambda d: data.image_folder(d / "images"), ValueError, "bad.png"),
    Case("class-folder-missing", lambda d: data.image_folder(d / "nothing-here"), FileNotFoundError,
         "nothing-here"),
    Case("load-recipe-python-tag", lambda d: load_recipe(d / "python-tag.yaml"), ValueError, "python/object"),
    Case("load-recipe-override", lambda d: load_recipe("digits", ["training.epochs.x=1"]), ValueError,
         "training.epochs is 60"),
]
# fmt: on


def test_the_table_covers_every_command_and_entry_point():
    commands = {case.run[0] for case in CASES if isinstance(case.run, list) and case.run}
    assert commands >= {"info", "convert", "predict", "train", "evaluate", "generate", "demo"}
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_a_bad_input_gives_one_line_naming_it(case, folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)  # anything written by mistake stays in the fixture's folder
    monkeypatch.delenv("OMNIPERCEIVER_DEBUG", raising=False)
    if isinstance(case.run, list):
        status = main([argument.format(d=folder) for argument in case.run])
        out, err = capsys.readouterr()
        assert status == case.expect, err
        assert "Traceback" not in out + err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and case.culprit in errors[0], err
        if case.expect == 1:
            assert errors[0].startswith("omniperceiver: error: ") and err.strip() == errors[0]
    else:
        with pytest.raises(case.expect) as raised:
            case.run(folder)
        message = str(raised.value)
        assert case.culprit in message and "\n" not in message and "Traceback" not in message


def test_debug_shows_the_traceback(folder, capsys, monkeypatch):
    missing = str(folder / "nothing-here")
    assert main(["--debug", "info", missing]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "FileNotFoundError" in err
    assert err.splitlines()[-1].startswith("omniperceiver: error: ")
    monkeypatch.setenv("OMNIPERCEIVER_DEBUG", "1")
    assert main(["info", missing]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_bug_of_ours_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr("omniperceiver.cli.info", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["info", "anything"])
