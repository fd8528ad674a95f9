"""The training engine's guarantees: a run killed with SIGKILL resumes exactly; 2 DDP processes equal 1 process
on the same global batch; evaluate reproduces the test metrics; every run folder gets its pictures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import needs_fortunes
from safetensors.torch import load_file
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_post_hook

pytest.importorskip("lightning")
from omniperceiver.cli import main
from omniperceiver.core.blocks import SelfAttentionBlock
from omniperceiver.train import load_recipe, train

# digits with a wider model (slower steps, so the kill lands mid-run) and a checkpoint every 10 steps:
# 1,257 training images / 64 = 20 steps per epoch, 80 in all
RESUMABLE = ["digits", "training.epochs=4", "training.batch_size=64", "model.latent_channels=128"]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniperceiver.cli", "train", *args, "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # equal numerics in every run, whatever the load


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def test_a_run_killed_mid_epoch_resumes_without_lost_or_repeated_steps(tmp_path):
    every = ["training.checkpoint_every_n_steps=10"]
    subprocess.run(_command(*RESUMABLE, *every, "--output-dir", str(tmp_path / "whole")), check=True, env=_env())

    checkpoint = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(_command(*RESUMABLE, *every, "--output-dir", str(tmp_path / "killed")), env=_env())
    seen, written = 0.0, 0
    while written < 3 and process.poll() is None:  # the third checkpoint: step 30, in the middle of epoch 2
        if checkpoint.is_file() and checkpoint.stat().st_mtime_ns != seen:
            seen, written = checkpoint.stat().st_mtime_ns, written + 1
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it was killed"
    state = torch.load(checkpoint, weights_only=False)
    assert 0 < state["global_step"] < 80 and state["global_step"] % 20, state["global_step"]  # mid-epoch

    resumed = subprocess.run(
        _command(*RESUMABLE, *every, "--output-dir", str(tmp_path / "killed"), "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 80
    whole, killed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    for name, tensor in whole.items():
        torch.testing.assert_close(killed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_two_ddp_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    # spoken digits: 2,100 training clips, so both runs see the same examples in every global batch
    recipe = ["spoken-digits", "model.dropout=0", "training.epochs=1"]  # 66 optimizer steps
    accuracies = []
    for devices in (1, 2):
        run = tmp_path / f"devices{devices}"
        done = subprocess.run(
            _command(*recipe, f"training.devices={devices}", "--output-dir", str(run)),
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("test_accuracy") == 1  # one report, not one per process
        accuracies.append(float(done.stdout.split("test_accuracy ")[1][:6]))  # 4 decimals
    one, two = _weights(tmp_path / "devices1"), _weights(tmp_path / "devices2")
    # attention key biases get a zero gradient in exact arithmetic (softmax ignores a shift shared by all
    # keys); Adam turns the float rounding left in them, which differs between the runs, into full steps
    compared = [name for name in one if not name.endswith("key.bias")]
    assert max((one[name] - two[name]).abs().max().item() for name in compared) < 2e-4  # rounding, through Adam
    assert accuracies[0] == accuracies[1] > 0.5  # it learned, identically


def test_accumulated_batches_train_as_the_larger_batch(tmp_path, single_thread):
    """Batches of 4, two per optimizer step, give the gradients of batches of 8 (each small batch's loss is
    halved: a mean over 8) and so the same weights."""
    generator = torch.Generator().manual_seed(0)
    rows = ["label," + ",".join(f"t{i}" for i in range(8))]
    rows += [f"{'ab'[i % 2]}," + ",".join(f"{v:.3f}" for v in torch.rand(8, generator=generator)) for i in range(80)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")  # 56 training rows: 7 steps of 8 an epoch
    recipe = tmp_path / "series.yaml"
    recipe.write_text(f"dataset: csv-series\ndata_path: {tmp_path / 'series.csv'}\nmodel: {{dropout: 0}}\n")
    gradients = []  # of each run's first optimizer step

    def first_gradient(optimizer, args, kwargs):
        if len(gradients) < len(runs):
            gradients.append(torch.cat([p.grad.flatten() for group in optimizer.param_groups for p in group["params"]]))

    runs = []
    with register_optimizer_step_post_hook(first_gradient):
        for name, batch, accumulate in (("whole", 8, 1), ("accumulated", 4, 2)):
            settings = [f"training.batch_size={batch}", f"training.accumulate_grad_batches={accumulate}"]
            runs.append(tmp_path / name)
            train(load_recipe(recipe, ["training.epochs=2", *settings]), runs[-1], progress=False)
    torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-5, atol=1e-7)
    whole, accumulated = (_weights(run) for run in runs)
    compared = [name for name in whole if not name.endswith("key.bias")]  # rounding through Adam: see the DDP test
    # Adam turns float rounding of near-zero gradients into steps of up to the learning rate (1e-3): measured 3.4e-6
    # and 1.4e-5 (decoder key weights) in two builds; stepping every small batch differs by about 1e-2
    assert max((whole[name] - accumulated[name]).abs().max().item() for name in compared) < 1e-4


def test_evaluate_reproduces_the_test_metrics_and_the_run_has_its_pictures(tmp_path, capsys):
    assert main(["train", "digits", "training.epochs=2", "--output-dir", str(tmp_path), "--quiet"]) == 0
    trained = capsys.readouterr().out
    assert main(["evaluate", str(tmp_path), "--quiet"]) == 0
    evaluated = capsys.readouterr().out
    accuracy = trained.split("test_accuracy ")[1][:6]
    assert f"test_accuracy {accuracy}" in evaluated
    for picture in ("curves.png", "confusion.png", "attention.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
    assert any((tmp_path / "logs").glob("events.out.tfevents.*"))  # TensorBoard
    assert (tmp_path / "logs" / "metrics.csv").read_text().startswith("epoch,")


@needs_fortunes
def test_a_byte_language_model_scores_its_bytes_reads_other_latent_counts_and_streams_generation(
    demo_results, demo_dir, capsys
):
    run = demo_dir / "fortunes-lm"  # (the demo's: the fortunes-lm recipe trained to its end)
    bits = demo_results["fortunes-lm"].result
    assert bits < 4.2  # the unigram model of the training bytes scores 4.87 on the test bytes
    samples = (run / "samples.txt").read_text()
    (scored,) = [line for line in samples.splitlines() if line.endswith("  this model")]
    assert float(scored.split()[0]) == pytest.approx(bits, abs=6e-4) and "xz -9e, given the training" in samples
    assert "' -> '" in samples
    assert main(["evaluate", str(run), "--quiet", "--num-latents", "16", "64", "128"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1] == "| N | test_bits_per_byte | test_loss | seconds |"
    by_latents = {int(row.split("|")[1]): float(row.split("|")[2]) for row in table[3:]}
    assert list(by_latents) == [16, 64, 128] and by_latents[64] == pytest.approx(bits, abs=1e-4)  # as trained
    assert len(set(by_latents.values())) == 3  # other latent counts score other numbers
    command = ["generate", str(run), "--prompt", "Love is", "--temperature", "0", "--max-new-tokens", "30"]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert first.startswith("Love is") and len(first) > len("Love is\n")
    assert main(command) == 0
    assert capsys.readouterr().out == first  # greedy: the same text again


def test_a_language_model_trains_on_a_users_text_files(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    line = "the quick brown fox jumps over the lazy dog. "
    (corpus / "a.txt").write_text(line * 400)
    (corpus / "b.txt").write_text("ünïcödé " + line * 200)
    recipe = tmp_path / "lm.yaml"
    recipe.write_text(
        f"dataset: text-corpus-lm\ndata_path: {corpus}\n"
        "model: {num_latents: 32, latent_channels: 64}\ntraining: {epochs: 20, batch_size: 8, learning_rate: 0.003}\n"
    )
    assert main(["train", str(recipe), "--output-dir", str(tmp_path / "run"), "--quiet"]) == 0
    bits = float(capsys.readouterr().out.split("test_bits_per_byte ")[1][:6])
    assert bits < 2.0  # a repeated sentence; its bytes' unigram entropy is about 4 bits
    assert main(["generate", str(tmp_path / "run"), "--prompt", "the quick", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("the quick")


def test_bf16_with_activation_checkpointing_learns_like_fp32(tmp_path, capsys):
    """training.precision=bf16-mixed and training.activation_checkpointing reach the model (autocast: the
    Linear layers' outputs are bf16; the encoder's checkpointed blocks run again in the backward pass) and learn
    as fp32 does."""
    accuracies, linear_dtypes, block_calls = [], [], []

    def see_dtype(module, args, output):  # after every module's forward, while training
        if module.training and isinstance(module, torch.nn.Linear):
            linear_dtypes[-1].add(output.dtype)

    def count_call(module, args):  # before every module's forward, recomputations included
        if module.training and isinstance(module, SelfAttentionBlock):
            block_calls[-1] += 1

    for name, settings in (
        ("fp32", []),
        ("bf16", ["training.precision=bf16-mixed", "training.activation_checkpointing=true"]),
    ):
        run = ["train", "digits", "training.epochs=8", *settings, "--output-dir", str(tmp_path / name), "--quiet"]
        linear_dtypes.append(set())
        block_calls.append(0)
        with register_module_forward_hook(see_dtype), register_module_forward_pre_hook(count_call):
            assert main(run) == 0
        accuracies.append(float(capsys.readouterr().out.split("test_accuracy ")[1][:6]))
    assert linear_dtypes == [{torch.float32}, {torch.bfloat16}]
    assert block_calls[1] == 2 * block_calls[0] > 0, block_calls
    assert (tmp_path / "bf16" / "recipe.yaml").read_text().count("bf16-mixed") == 1
    saved = {name: json.loads((tmp_path / name / "model" / "config.json").read_text()) for name in ("fp32", "bf16")}
    assert [saved[name]["encoder"]["activation_checkpointing"] for name in ("fp32", "bf16")] == [False, True]
    fp32, bf16 = accuracies
    # mid-curve after 8 epochs (chance is 0.1): fp32 0.717; bf16 0.662 on 2 threads, 0.695 on 1
    assert fp32 > 0.6 and abs(bf16 - fp32) < 0.1, accuracies
