"""No lost work: a run folder is written only by its own run; --overwrite keeps the old checkpoint until the new
run's first; --resume takes only safe recipe changes and appends the logs; checkpoints by wall time; training
stops at a non-finite gradient with no NaN model or checkpoint; NaN data is refused; predict's outputs are
unique per input."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("lightning")
from omniperceiver import zoo
from omniperceiver.cli import main
from omniperceiver.data.folders import point_cloud_folder
from omniperceiver.data.series import csv_series
from omniperceiver.train import load_recipe, train
from omniperceiver.train.tasks.base import TaskModule

# 1,257 training digits in batches of 100: 13 optimizer steps per epoch, a few seconds a run
TINY = [
    "training.epochs=1",
    "training.batch_size=100",
    "model.num_latents=8",
    "model.latent_channels=16",
    "model.num_self_attends_per_block=1",
]


def tiny(*overrides: str):
    return load_recipe("digits", [*TINY, *overrides])


def checkpoint(run) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run, copied by the tests that change it."""
    run = tmp_path_factory.mktemp("finished")
    train(tiny(), run, progress=False)
    return run


@pytest.fixture
def run(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


class Interrupted(Exception):
    pass


def interrupt_at(monkeypatch, step: int) -> None:
    """Make training raise once ``step`` optimizer steps are done (after that step's checkpoint callbacks)."""

    def on_train_batch_end(module, *args):
        if module.global_step >= step:
            raise Interrupted

    monkeypatch.setattr(TaskModule, "on_train_batch_end", on_train_batch_end)


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and not an omniperceiver run folder \(it has no recipe.yaml\)"):
        train(tiny(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_existing_run_is_continued_or_replaced_only_when_asked(run):
    before = sorted(p.name for p in run.rglob("*"))
    with pytest.raises(ValueError, match=r"holds a run: --resume continues it, --overwrite replaces it"):
        train(tiny(), run)
    with pytest.raises(ValueError, match=r"--resume continues a run and --overwrite replaces it: give one of them"):
        train(tiny(), run, resume=True, overwrite=True)
    assert sorted(p.name for p in run.rglob("*")) == before


def test_overwrite_keeps_the_old_checkpoint_until_the_new_run_writes_one(run, monkeypatch):
    old = (run / "checkpoints" / "last.ckpt").read_bytes()
    interrupt_at(monkeypatch, 1)
    with pytest.raises(Interrupted):
        train(tiny("training.learning_rate=0.002"), run, overwrite=True, progress=False)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == old
    assert not (run / "model").exists() and not (run / "curves.png").exists()  # the old run's outputs are gone
    interrupt_at(monkeypatch, 2)
    with pytest.raises(Interrupted):
        train(tiny("training.learning_rate=0.002", "training.checkpoint_every_n_steps=2"), run, overwrite=True)
    new = checkpoint(run)
    assert new["global_step"] == 2
    assert new["callbacks"]["RecipeRecord"]["recipe"]["training"]["learning_rate"] == 0.002


def test_resume_with_more_epochs_trains_them_and_appends_the_logs(run, tmp_path):
    logged = (run / "logs" / "metrics.csv").read_text()
    weights = load_file(run / "model" / "model.safetensors")
    shutil.copytree(run, tmp_path / "three")
    train(tiny("training.epochs=2"), run, resume=True, progress=False)
    assert checkpoint(run)["global_step"] == 26  # the second epoch's 13 steps
    resumed = load_file(run / "model" / "model.safetensors")
    assert all(not torch.equal(resumed[name], tensor) for name, tensor in weights.items() if name.endswith("weight"))
    history = (run / "logs" / "metrics.csv").read_text()
    assert history.startswith(logged) and history.count("\n") == logged.count("\n") + 3  # train, val, test rows

    train(tiny("training.epochs=3"), tmp_path / "three", resume=True, progress=False)
    state = checkpoint(tmp_path / "three")
    assert state["global_step"] == 39
    assert state["lr_schedulers"][0]["total_steps"] == 39  # the schedule covers the new length


def test_resume_refuses_an_unsafe_change_naming_the_keys_and_both_values(run):
    with pytest.raises(
        ValueError,
        match=r"cannot resume .* with a changed recipe: model.num_latents 8 -> 16; "
        r"training.learning_rate 0.001 -> 0.01 \(a resumed run may only train more training.epochs",
    ):
        train(tiny("model.num_latents=16", "training.learning_rate=0.01"), run, resume=True)
    train(tiny("training.epochs=2", "training.checkpoint_every_n_steps=5"), run, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"changed recipe: training.epochs 2 -> 1 \("):
        train(tiny(), run, resume=True)


def test_a_checkpoint_is_written_by_wall_time_in_the_middle_of_an_epoch(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, 5)
    with pytest.raises(Interrupted):
        train(tiny("training.checkpoint_every_minutes=0.000001"), tmp_path, progress=False)
    assert checkpoint(tmp_path)["global_step"] == 5  # of 13 in the epoch


def test_an_infinite_learning_rate_stops_at_the_first_bad_step_with_no_nan_model_or_checkpoint(run, tmp_path, capsys):
    old = (run / "checkpoints" / "last.ckpt").read_bytes()
    command = ["train", "digits", *TINY, "training.learning_rate=.inf", "--output-dir", str(run), "--quiet"]
    assert main([*command, "--overwrite"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("omniperceiver: error: training stopped at optimizer step 2: the gradient is not finite (")
    assert not (run / "model").exists()
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == old
    # a checkpoint due after the first step, whose update made the weights infinite, is refused too
    command = ["train", "digits", *TINY, "training.learning_rate=.inf", "training.checkpoint_every_n_steps=1"]
    assert main([*command, "--output-dir", str(tmp_path / "new"), "--quiet"]) == 1
    assert "optimizer step 1: the weights it made are not finite" in capsys.readouterr().err
    assert not (tmp_path / "new" / "checkpoints").exists() and not (tmp_path / "new" / "model").exists()


def test_nan_and_infinite_values_in_data_files_are_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "clouds" / name).mkdir(parents=True)
        for i in range(3):
            np.save(tmp_path / "clouds" / name / f"{i}.npy", rng.normal(size=(16, 3)))
    bad = rng.normal(size=(16, 3))
    bad[7, 1] = np.nan
    np.save(tmp_path / "clouds" / "b" / "1.npy", bad)
    with pytest.raises(ValueError, match=r"cannot read .*clouds/b/1.npy: point 7 is not finite \(\[.*, nan, .*\]\)"):
        point_cloud_folder(tmp_path / "clouds", points=8)
    (tmp_path / "series.csv").write_text("label,t0,t1\nup,0,1\ndown,1,0\nup,0,inf\n")
    with pytest.raises(ValueError, match=r"series.csv, line 4: NaN and infinities are refused"):
        csv_series(tmp_path / "series.csv", label_column="label")


def test_predict_writes_one_output_per_flow_pair_when_frames_share_a_name(tmp_path, capsys):
    zoo.create("optical-flow-perceiver", reduced=True).eval().save_pretrained(tmp_path / "flow")
    frames = []
    for seed, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        for frame in ("f1", "f2"):
            pixels = np.random.default_rng([seed, len(frames)]).integers(0, 256, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{frame}.png")
            frames.append(str(tmp_path / folder / f"{frame}.png"))
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "flow"), *frames, "--output-dir", str(out), "--quiet"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.npy")) == ["a/f1_flow.npy", "b/f1_flow.npy"]
    assert not np.array_equal(np.load(out / "a" / "f1_flow.npy"), np.load(out / "b" / "f1_flow.npy"))
    again = tmp_path / "again"
    assert main(["predict", str(tmp_path / "flow"), *frames[:2], *frames[:2], "--output-dir", str(again)]) == 0
    assert sorted(p.name for p in again.glob("*.npy")) == ["f1_2_flow.npy", "f1_flow.npy"]  # one pair twice


def test_a_run_of_exactly_ten_optimizer_steps_trains(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, 2)  # 1,257 digits in 10 batches: a 10% warm-up of 10 steps divided by zero
    with pytest.raises(Interrupted):
        train(tiny("training.batch_size=126", "training.checkpoint_every_n_steps=1"), tmp_path, progress=False)
    assert checkpoint(tmp_path)["lr_schedulers"][0]["total_steps"] == 10
