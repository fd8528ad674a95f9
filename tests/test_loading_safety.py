"""Loading a model or a checkpoint never runs code: config types come from a table of known names, tensors
from safetensors or weights-only unpickling; a bad file gets one ValueError naming it; only a string that can
be nothing but a Hub id reaches the network."""

import json
import sys
import zipfile

import pytest
import torch
from helpers import small_classifier

import omniperceiver as op
from omniperceiver import loading
from omniperceiver.cli import main
from omniperceiver.config_types import CONFIG_ALIASES, CONFIG_TYPES
from omniperceiver.core import ARConfig
from omniperceiver.core.config import Config
from omniperceiver.interop.transformers import read_weights
from omniperceiver.models.pretrained import CONFIG_FILE, WEIGHTS_FILE
from omniperceiver.zoo import PUBLISHED
from omniperceiver.zoo import config as zoo_config

pytestmark = pytest.mark.usefixtures("single_thread")


def small_ar() -> op.PerceiverAR:
    ar = ARConfig(channels=16, num_latents=4, num_heads=2, num_self_attention_layers=1)
    return op.PerceiverARConfig(vocab_size=40, max_seq_len=8, ar=ar).build()


class WritesAFile:
    """Unpickled, opens ``path`` for writing: the kind of code a crafted pickle runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_model_folder_that_names_its_own_module_runs_no_code(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # where `import downloaded_model.payload` would find the file
    folder = tmp_path / "downloaded_model"
    small_classifier().save_pretrained(folder)
    (folder / "payload.py").write_text("open('pwned', 'w').close()\nfrom omniperceiver import ARConfig\n")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["type"] = "downloaded_model.payload:ARConfig"
    (folder / CONFIG_FILE).write_text(json.dumps(config))

    message = r"config.json.type: unknown config type .downloaded_model.payload:ARConfig.; expected a name in"
    with pytest.raises(ValueError, match=message):
        op.from_pretrained("downloaded_model")
    assert main(["info", "downloaded_model"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("omniperceiver: error: downloaded_model/config.json.type: unknown config type")
    assert error.count("\n") == 1
    assert not (tmp_path / "pwned").exists()
    assert "downloaded_model.payload" not in sys.modules
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "payload.py"]  # no __pycache__


def _old_name(name: str) -> str:
    """How config.json named the class before the short names: "module:qualname"."""
    return f"{CONFIG_TYPES[name].__module__}:{CONFIG_TYPES[name].__qualname__}"


def _old_names(data):
    """``data`` as written before the short names."""
    if isinstance(data, dict):
        return {key: _old_name(value) if key == "type" else _old_names(value) for key, value in data.items()}
    return [_old_names(item) for item in data] if isinstance(data, list) else data


def test_every_config_type_is_known_by_its_short_name_and_its_old_module_path():
    def subclasses(cls):
        return {cls, *(sub for child in cls.__subclasses__() for sub in subclasses(child))}

    import omniperceiver.zoo  # noqa: F401 (every module that defines a config class is imported)

    ours = {cls for cls in subclasses(Config) - {Config} if not cls.__module__.startswith("omniperceiver.train")}
    assert set(CONFIG_TYPES.values()) == ours
    for name, cls in CONFIG_TYPES.items():
        assert cls.__name__ == name
        assert CONFIG_ALIASES[f"{cls.__module__}:{cls.__qualname__}"] == name  # the name saved folders hold


@pytest.mark.parametrize("name", [*PUBLISHED, "perceiver-ar"])
def test_configs_saved_with_module_paths_still_load_and_are_saved_with_short_names(name):
    config = small_ar().config if name == "perceiver-ar" else zoo_config(name, reduced=True)
    data = config.to_dict()
    text = json.dumps(data)
    assert all(":" not in name and name in CONFIG_TYPES for name in _types(data))
    assert Config.from_json(text) == config
    assert Config.from_json(json.dumps(_old_names(data))) == config


def _types(data):
    if isinstance(data, dict):
        return [data["type"], *(name for value in data.values() for name in _types(value))]
    return [name for item in data for name in _types(item)] if isinstance(data, list) else []


def _edit(path, edit):
    data = json.loads(path.read_text())
    data = edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: {**d, "tied_output": "no"}, r"\.tied_output: expected bool, got 'no'"),
        (lambda d: {**d, "vocab_size": True}, r"\.vocab_size: expected int, got True"),
        (lambda d: {**d, "vocab_size": 40.0}, r"\.vocab_size: expected int, got 40\.0"),
        (lambda d: {**d, "pad_id": "3"}, r"\.pad_id: expected int \| None, got '3'"),
        (lambda d: {k: v for k, v in d.items() if k != "vocab_size"}, r"\.vocab_size: missing; expected int"),
        (lambda d: [d], r": expected a mapping of Config fields, got list"),
        (lambda d: {**d, "ar": {**d["ar"], "num_heads": [2]}}, r"\.ar\.num_heads: expected int, got \[2\]"),
        (lambda d: {**d, "ar": {**d["ar"], "type": "DecoderConfig"}}, r"\.ar\.type: expected one of \['ARConfig'\]"),
        (lambda d: {**d, "ar": 3}, r"\.ar: expected a mapping of ARConfig fields, got int"),
        (lambda d: {**d, "vocab_size": 0}, r": vocab_size=0 is invalid: expected a positive integer"),
        (lambda d: {**d, "type": None}, r"\.type: unknown config type None"),
    ],
)
def test_config_values_are_type_checked_strictly_naming_the_file_and_key(tmp_path, edit, message):
    small_ar().save_pretrained(tmp_path)
    _edit(tmp_path / CONFIG_FILE, edit)
    with pytest.raises(ValueError, match=f"^{tmp_path / CONFIG_FILE}{message}"):
        op.from_pretrained(tmp_path)


def test_ints_read_as_floats_and_lists_as_tuples(tmp_path):
    model = small_classifier()
    model.save_pretrained(tmp_path)
    _edit(tmp_path / CONFIG_FILE, lambda d: {**d, "encoder": {**d["encoder"], "dropout": 0}})
    config = op.from_pretrained(tmp_path).config
    assert config == model.config and type(config.encoder.dropout) is float
    assert config.input.index_shape == (6, 5)
    _edit(tmp_path / CONFIG_FILE, lambda d: {**d, "input": {**d["input"], "index_shape": [6, "5"]}})
    with pytest.raises(ValueError, match=r"\.input\.index_shape\[1\]: expected int, got '5'"):
        op.from_pretrained(tmp_path)


def test_a_config_file_that_is_not_json_or_not_text_is_one_error(tmp_path):
    small_ar().save_pretrained(tmp_path)
    (tmp_path / CONFIG_FILE).write_text('{"type": ')
    with pytest.raises(ValueError, match=f"^{tmp_path / CONFIG_FILE}: not valid JSON: Expecting value"):
        op.from_pretrained(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("[" * 100_000)
    with pytest.raises(ValueError, match=f"^{tmp_path / CONFIG_FILE}: not valid JSON: maximum recursion depth"):
        op.from_pretrained(tmp_path)
    (tmp_path / CONFIG_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=f"^{tmp_path / CONFIG_FILE} is not UTF-8 text"):
        op.from_pretrained(tmp_path)


@pytest.fixture
def no_network(monkeypatch):
    def download(repo_id):
        raise AssertionError(f"{repo_id!r} reached the network")

    monkeypatch.setattr(loading, "_download", download)


@pytest.mark.parametrize("source", ["runs/missing", "./owner/name", "../owner/name", ".cache/x", "a/b/c", "name"])
def test_a_missing_local_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch, no_network, source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^{source} does not exist"):
        op.from_pretrained(source)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        op.from_pretrained(tmp_path / "owner" / "name")  # an absolute path, and a Path object: never a Hub id
    with pytest.raises(FileNotFoundError, match=r"/name does not exist"):
        op.from_pretrained(str(tmp_path / "owner" / "name"))


def test_only_an_owner_name_string_reaches_the_hub(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="'deepmind/vision-perceiver-conv' reached the network"):
        op.from_pretrained("deepmind/vision-perceiver-conv")
    (tmp_path / "model.bin").touch()
    with pytest.raises(FileNotFoundError, match=r"model\.bin is a file, not a model directory"):
        op.from_pretrained("model.bin")


def _damaged(data: bytes) -> dict[str, bytes]:
    return {"empty": b"", "truncated": data[: len(data) // 2], "cut short": data[:-20], "garbage": b"garbage " * 8}


def test_damaged_safetensors_are_one_error_naming_the_file(tmp_path):
    small_classifier().save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    header = b'{"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}'
    huge = len(header).to_bytes(8, "little") + header  # claims 4 TB: refused before anything is allocated
    for data in [*_damaged(weights.read_bytes()).values(), huge]:
        weights.write_bytes(data)
        with pytest.raises(ValueError, match=f"^{weights} is not a readable safetensors file: "):
            op.from_pretrained(tmp_path)


def test_damaged_or_crafted_pytorch_model_bin_is_one_error_naming_the_file(tmp_path):
    weights = tmp_path / "pytorch_model.bin"
    torch.save({"perceiver.embeddings.latents": torch.zeros(4, 8)}, weights)
    assert set(read_weights(tmp_path)) == {"perceiver.embeddings.latents"}
    for data in _damaged(weights.read_bytes()).values():
        weights.write_bytes(data)
        with pytest.raises(ValueError, match=f"^{weights} is not a readable file of tensors and plain values"):
            read_weights(tmp_path)
    torch.save([torch.zeros(1)], weights)
    with pytest.raises(ValueError, match=f"^{weights} holds a list, not a state dict"):
        read_weights(tmp_path)
    torch.save({"x": WritesAFile(tmp_path / "pwned")}, weights)
    with pytest.raises(ValueError, match=f"^{weights} is not a readable file of tensors and plain values"):
        read_weights(tmp_path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("force_no_weights_only", [False, True])
def test_a_crafted_checkpoint_runs_no_code_on_resume(tmp_path, monkeypatch, force_no_weights_only):
    from omniperceiver.train.checkpoints import AtomicCheckpointIO

    if force_no_weights_only:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    checkpoint = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, checkpoint)
    loaded = AtomicCheckpointIO().load_checkpoint(checkpoint)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))

    pwned = tmp_path / "pwned"
    torch.save({"state_dict": {}, "epoch": WritesAFile(pwned)}, checkpoint)
    with pytest.raises(ValueError, match=f"^{checkpoint} is not a readable file of tensors and plain values: "):
        AtomicCheckpointIO().load_checkpoint(checkpoint, weights_only=False)
    assert not pwned.exists()
    torch.load(checkpoint, weights_only=False)  # the crafted file is live: unpickled, it writes the file
    assert pwned.exists()


def test_a_damaged_checkpoint_is_one_error_naming_the_file(tmp_path):
    from omniperceiver.train.checkpoints import AtomicCheckpointIO

    checkpoint = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(100)}}, checkpoint)
    for data in _damaged(checkpoint.read_bytes()).values():
        checkpoint.write_bytes(data)
        with pytest.raises(ValueError, match=f"^{checkpoint} is not a readable file of tensors and plain values"):
            AtomicCheckpointIO().load_checkpoint(checkpoint)
    torch.save({"w": torch.zeros(4)}, checkpoint)
    with zipfile.ZipFile(checkpoint) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(name for name in records if name.endswith("/data.pkl"))
    assert records[pickled].count(b"K\x04t") == 1  # the storage's size, 4 elements
    records[pickled] = records[pickled].replace(b"K\x04t", b"J" + (10**9).to_bytes(4, "little") + b"t")
    with zipfile.ZipFile(checkpoint, "w") as archive:  # now claims 4 GB, holds 16 bytes: refused before allocating
        for name, data in records.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"record size \(16 bytes\) does not match expected size \(4000000000 bytes"):
        AtomicCheckpointIO().load_checkpoint(checkpoint)
    torch.save([1, 2], checkpoint)
    with pytest.raises(ValueError, match=f"^{checkpoint} holds a list, not a Lightning checkpoint"):
        AtomicCheckpointIO().load_checkpoint(checkpoint)


def test_train_resume_refuses_a_crafted_checkpoint_with_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("lightning")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    command = ["train", "digits", "training.epochs=1", "model.latent_channels=16", "--output-dir", str(tmp_path)]
    assert main([*command, "--quiet"]) == 0
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["epoch"] = WritesAFile(tmp_path / "pwned")
    torch.save(state, checkpoint)
    capsys.readouterr()
    assert main([*command, "--quiet", "--resume"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]  # after any warning Lightning prints
    assert error.startswith(f"omniperceiver: error: {checkpoint} is not a readable file of tensors and plain values")
    assert error.endswith("Unsupported global: GLOBAL io.open was not an allowed global by default")
    assert not (tmp_path / "pwned").exists()
