"""Export: every published model class, a recipe's models and the Perceiver AR's generation graphs as ONNX
(run with onnxruntime) and .pt2 (torch.export.load), equal to the eager model at two sizes of each dynamic axis;
a plain onnxruntime loop generates the eager model's greedy tokens; what cannot be exported says why."""

import json

import numpy as np
import pytest
import torch
from helpers import random_ar

import omniperceiver as op
from omniperceiver import zoo
from omniperceiver.adapters import points
from omniperceiver.cli import main
from omniperceiver.export import export, exporter
from omniperceiver.export.runtime import generate_greedy
from omniperceiver.inference import generate

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("single_thread")

TEXT = ("language-perceiver", "text-classifier")


@pytest.mark.parametrize("name", list(zoo.PUBLISHED))
def test_every_published_class_exports_to_onnx_equal_to_eager_at_two_batches_and_lengths(name, tmp_path):
    model = zoo.create(name, reduced=True)
    (written,) = export(model, tmp_path, dynamic=["batch", "length"] if name in TEXT else ["batch"])
    expected = (
        {"batch 1", "batch 3"} if name not in TEXT else {f"batch {b}, length {n}" for b in (1, 3) for n in (48, 24)}
    )
    assert set(written.differences) == expected
    assert written.max_difference <= 1e-4
    described = json.loads((tmp_path / "export.json").read_text())
    assert described["task"] == zoo.PUBLISHED[name].kind.task
    graph = described["graphs"]["model"]
    assert graph["file"] == "model.onnx" and all(s["shape"][0] == "batch" for s in graph["inputs"].values())
    assert set(graph["outputs"].values()) == {"float32"}


@pytest.mark.parametrize("name", list(zoo.PUBLISHED))
def test_every_published_class_exports_to_pt2_that_loads_and_equals_eager(name, tmp_path):
    model = zoo.create(name, reduced=True).eval()
    export(model, tmp_path, format="pt2", dynamic=["batch"])
    loaded = torch.export.load(tmp_path / "model.pt2").module()
    x, mask = model.config.input.example(3)
    inputs = tuple(x.values()) if isinstance(x, dict) else (x, *([mask] if mask is not None else []))
    with torch.no_grad():
        expected = model(x, mask)
    got = loaded(*inputs)
    for a, b in zip(got, expected.values() if isinstance(expected, dict) else [expected], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_an_onnx_text_classifier_reads_a_padded_batch_as_the_eager_model(tmp_path):
    # checked here with onnxruntime directly, not through export's own check
    model = zoo.create("text-classifier", reduced=True).eval()
    export(model, tmp_path, dynamic=["batch", "length"])
    ids = torch.randint(6, 262, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 12:] = False  # a shorter text, right-padded
    ids[1, 12:] = 0
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (got,) = session.run(None, {"inputs": ids.numpy(), "mask": mask.numpy()})
    with torch.no_grad():
        expected = model(ids, mask)
        alone = model(ids[1:2, :12])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1], alone[0].numpy(), atol=1e-5)  # the padding changes nothing


def test_a_static_export_fixes_the_batch(tmp_path):
    model = zoo.create("vision-perceiver-fourier", reduced=True)
    (written,) = export(model, tmp_path)
    assert set(written.differences) == {"batch 1"}
    described = json.loads((tmp_path / "export.json").read_text())["graphs"]["model"]["inputs"]
    assert described == {"inputs": {"dtype": "float32", "shape": [1, 3, 16, 16]}}
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    with pytest.raises(Exception, match="dimension"):
        session.run(None, {"inputs": np.zeros((2, 3, 16, 16), dtype=np.float32)})


@pytest.mark.parametrize("refill_latents", [None, 1])
def test_onnxruntime_generation_gives_the_eager_greedy_tokens(refill_latents, tmp_path):
    model = random_ar()  # 8 latents, 24 positions at most
    written = export(model, tmp_path, dynamic=["batch", "length"], refill_latents=refill_latents)
    assert [graph.graph for graph in written] == ["prefill", "step"]
    prompts = [torch.randint(0, 50, (n,)).tolist() for n in (3, 12, 20)]  # shorter than the refill, past it
    options = dict(temperature=0, refill_latents=refill_latents)
    eager = [t.tolist() for t in generate(model, [torch.tensor(p) for p in prompts], 40, **options)]
    assert len({tuple(row) for row in eager}) == 3 and all(len(set(row)) >= 4 for row in eager)
    assert generate_greedy(tmp_path, prompts, 40) == eager  # 20 + 40 tokens slide past the 24 positions
    stop = next(i for i in range(3, 40) if eager[1][i] not in eager[1][:i])  # row 1 stops there, the others go on
    eos = eager[1][stop]
    eager = [t.tolist() for t in generate(model, [torch.tensor(p) for p in prompts], 40, eos_id=eos, **options)]
    assert generate_greedy(tmp_path, prompts, 40, eos_id=eos) == eager and len(eager[1]) == stop + 1


def test_the_ar_graphs_are_checked_at_two_prompt_lengths_and_export_as_pt2_too(tmp_path):
    model = random_ar()
    prefill, step = export(model, tmp_path / "onnx", dynamic=["batch", "length"])
    assert set(prefill.differences) == {f"batch {b}, length {n}" for b in (1, 3) for n in (24, 5)}
    assert set(step.differences) == {"batch 1", "batch 3"}
    prefill, step = export(model, tmp_path / "pt2", format="pt2", dynamic=["batch", "length"])
    assert max(prefill.max_difference, step.max_difference) <= 1e-5
    generation = json.loads((tmp_path / "pt2" / "export.json").read_text())["generation"]
    assert generation == {"max_seq_len": 24, "num_latents": 8, "refill_latents": 4, "vocab_size": 50, "pad_id": 0}


def test_refilling_every_latent_exports_the_prefill_alone(tmp_path):
    written = export(random_ar(), tmp_path, format="pt2", refill_latents=8)
    assert [graph.graph for graph in written] == ["prefill"]


def test_bf16_exports_as_pt2_and_keeps_the_callers_model(tmp_path):
    model = zoo.create("vision-perceiver-fourier", reduced=True)
    (written,) = export(model, tmp_path, format="pt2", dtype="bf16")
    assert written.max_difference <= 0.05
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="bf16 ONNX graphs do not run on onnxruntime"):
        export(model, tmp_path, dtype="bf16")


def test_a_difference_from_eager_fails_the_export(tmp_path, monkeypatch):
    runner = exporter.onnx_runner
    monkeypatch.setattr(exporter, "onnx_runner", lambda path: lambda args: [t + 1e-3 for t in runner(path)(args)])
    with pytest.raises(ValueError, match=r"model.onnx: the exported model differs from the eager model by 0.001"):
        export(zoo.create("vision-perceiver-fourier", reduced=True), tmp_path)


def test_what_cannot_be_exported_says_which_module_and_why(tmp_path, monkeypatch):
    model = zoo.create("vision-perceiver-fourier", reduced=True)
    encoder = model.encoder.forward
    monkeypatch.setattr(model.encoder, "forward", lambda x, mask: encoder(x, mask) * float(x.sum() > 0))
    with pytest.raises(
        ValueError, match=r"cannot export model: in PerceiverIO.forward \(perceiver_io.py:\d+\): .*data"
    ):
        export(model, tmp_path)
    with pytest.raises(ValueError, match="cannot export a Linear: expected a PerceiverIO or a PerceiverAR"):
        export(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(ValueError, match="dynamic axes must be among batch, length, got width"):
        export(model, tmp_path, dynamic=["width"])
    with pytest.raises(ValueError, match="PerceiverIO reads inputs of a fixed size: no length axis"):
        export(model, tmp_path, dynamic=["length"])
    with pytest.raises(ValueError, match="refill_latents is a Perceiver AR setting"):
        export(model, tmp_path, refill_latents=2)
    with pytest.raises(ValueError, match=r"refill_latents must be in \[1, 8\]"):
        export(random_ar(), tmp_path, refill_latents=9)


def test_the_export_command(tmp_path, capsys):
    zoo.create("text-classifier", reduced=True).save_pretrained(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "out")]) == 0  # batch,length: the zoo's default
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{tmp_path / 'model'}: PerceiverIO (text classification), ")
    assert "model.onnx" in printed[1] and "max |difference| from eager" in printed[1]
    assert "batch 3, length 24" in printed[1]
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "out"), "--dynamic", "none"]) == 0
    assert "(batch 1, length 48)" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.onnx").is_file() and (tmp_path / "out" / "export.json").is_file()
    # refused by the argument parser, before any model loads (there is none)
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "out"), "--dynamic", "batch,width"]) == 2
    assert "argument --dynamic: unknown axis width: expected batch, length or none" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_point_clouds_in_their_principal_axes_export_to_onnx(tmp_path):
    clouds = points.PointCloudInputConfig(num_bands=4, align_axes=True, radial_features=True)
    model = op.PerceiverIOConfig.classifier(clouds, 5, num_latents=8, latent_channels=16).build()
    (written,) = export(model, tmp_path, dynamic=["batch", "length"])
    assert written.max_difference <= 1e-4 and len(written.differences) == 4


def test_jacobi_eigenvectors_equal_eigh_up_to_sign(monkeypatch):
    clouds = torch.randn(16, 50, 3) * torch.tensor([3.0, 2.0, 1.0])
    covariance = clouds.transpose(1, 2) @ clouds / 50
    expected = points.eigenvectors(covariance)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    got = points.eigenvectors(covariance)
    assert got.shape == expected.shape
    torch.testing.assert_close((got * expected).sum(1).abs(), torch.ones(16, 3), atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(zoo.PUBLISHED))
def test_every_published_class_exports_at_published_size(name, tmp_path):
    """With its kind's defaults: the multimodal autoencoder decodes subsets (its 802,816 video outputs at once
    would hold (B, O, 512) decoder outputs: more than 24 GiB with the check's two runs)."""
    kind = zoo.published(name).kind
    (written,) = export(zoo.create(name), tmp_path, dynamic=kind.dynamic, subset=kind.subset)
    assert written.max_difference <= 1e-4


@pytest.mark.parametrize("name", ["optical-flow-perceiver", "language-perceiver"])
def test_subset_decoding_exports_with_the_indices_an_input(name, tmp_path):
    model = zoo.create(name, reduced=True).eval()
    (written,) = export(model, tmp_path, dynamic=["batch"], subset=True)
    assert written.max_difference <= 1e-4 and len(written.differences) == 4  # batch 1, 3 x all outputs, one
    x, mask = model.config.input.example(2)
    indices = torch.tensor([7, 0, 3])
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    feeds = {"inputs": x.numpy(), **({"mask": mask.numpy()} if mask is not None else {})}
    (got,) = session.run(None, {**feeds, "output_indices": indices.numpy()})
    with torch.no_grad():
        full = model(x, mask)
    rows = full.flatten(1, -2)[:, indices]  # flow (B, H, W, 2) or logits (B, L, V): the chosen outputs
    np.testing.assert_allclose(got.reshape(rows.shape), rows.numpy(), atol=1e-5)


def test_chunked_decoding_exports_and_needs_a_fixed_number_of_outputs(tmp_path):
    model = zoo.create("optical-flow-perceiver", reduced=True)
    (written,) = export(model, tmp_path, dynamic=["batch"], chunk_size=50)  # 192 outputs: 4 chunks
    assert written.max_difference <= 1e-4
    with pytest.raises(ValueError, match="chunked decoding needs a fixed number of outputs"):
        export(model, tmp_path, subset=True, chunk_size=50)


def test_multimodal_subsets_are_decoded_at_indices_per_modality(tmp_path):
    model = zoo.create("multimodal-perceiver", reduced=True).eval()
    (written,) = export(model, tmp_path, subset=True)
    assert written.max_difference <= 1e-4 and len(written.differences) == 4  # (audio, image) x (all, one)
    x, _ = model.config.input.example(2)
    indices = {"audio": torch.tensor([5, 0]), "image": torch.tensor([9, 300, 2, 511]), "label": torch.tensor([0])}
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    feeds = {name: tensor[:1].numpy() for name, tensor in x.items()}
    got = session.run(None, {**feeds, **{f"{name}_indices": i.numpy() for name, i in indices.items()}})
    with torch.no_grad():
        expected = model({name: tensor[:1] for name, tensor in x.items()}, output_indices=indices)
        full = model({name: tensor[:1] for name, tensor in x.items()})
    for name, rows in zip(("audio", "image", "label"), got, strict=True):
        np.testing.assert_allclose(rows, expected[name].numpy(), atol=1e-5)
    image = full["image"][:, indices["image"]]  # the rows of full decoding, in the order asked
    np.testing.assert_allclose(got[1], image.numpy(), atol=1e-5)
    assert got[0].shape == (1, 2 * 8) and got[2].shape == (1, 10)  # audio: 2 patches of 8 samples, flattened


def test_multimodal_chunked_decoding_exports(tmp_path):
    (written,) = export(zoo.create("multimodal-perceiver", reduced=True), tmp_path, dynamic=["batch"], chunk_size=100)
    assert written.max_difference <= 1e-4
