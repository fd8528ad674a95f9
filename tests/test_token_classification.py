"""Per-token classification: the language of every byte of two joined fortune snippets, one output per input
byte, scored on the labelled bytes only; a masked language model fine-tunes into it with its decoder kept."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lightning")

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.cli import main
from omniperceiver.data.text import LANGUAGES, MIN_PART
from omniperceiver.loading import from_pretrained
from omniperceiver.train.catalog import get_task
from omniperceiver.train.initialize import build_model
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.sections import TrainingSettings
from omniperceiver.train.tasks.token_classification import UNLABELLED, marked


@pytest.fixture(scope="module")
def splits():
    return get_task("fortunes-mixed").splits(None)


def test_every_byte_is_labelled_with_its_snippets_language_and_specials_are_not(splits):
    ids, _, labels = splits.train.tensors
    assert splits.sizes() == (4200, 900, 900) and splits.classes == LANGUAGES
    for row in range(200):
        labelled = labels[row] != UNLABELLED
        assert torch.equal(labelled, ids[row] >= ByteTokenizer.OFFSET)  # [CLS], [SEP], [PAD]: unlabelled
        runs = labels[row][labelled].unique_consecutive()
        assert len(runs) == 2 and runs[0] != runs[1]  # one language, then another
        first = labels[row][labelled].tolist().index(int(runs[1]))
        text = ByteTokenizer().decode(ids[row][labelled])
        assert len(ByteTokenizer().decode(ids[row][labelled][:first])) >= MIN_PART and len(text) <= 128
    first_languages = labels[:, 1].bincount()
    assert first_languages.min() == first_languages.max() == 1050
    assert 0.65 < get_task("fortunes-mixed").baseline(splits) < 0.75  # the bytes within 8 of each: 0.695


def test_the_loss_and_accuracy_read_the_labelled_tokens_only(splits):
    task = get_task("fortunes-mixed")
    recipe = load_recipe("fortunes-mixed")
    torch.manual_seed(0)
    model = task.model_config(splits, recipe.model, recipe.training).build().eval()
    module = task.module(model, task, TrainingSettings())
    batch = splits.test.tensors
    batch = tuple(t[:16] for t in batch)
    with torch.inference_mode():
        outputs, target = module.predict(batch)
        logits = model(batch[0], batch[1])
        labelled = batch[2] != UNLABELLED
        assert torch.equal(outputs, logits[labelled]) and torch.equal(target, batch[2][labelled])
        assert float(module.loss(outputs, target)) == pytest.approx(float(F.cross_entropy(logits[labelled], target)))


def test_a_masked_language_model_becomes_a_per_token_classifier_with_its_decoder(tmp_path, capsys):
    mlm = tmp_path / "mlm"
    assert main(["train", "fortunes-mlm", "training.epochs=1", "training.batches_per_epoch=2", "--output-dir",
                 str(mlm), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    recipe = load_recipe("fortunes-mixed", ["model=null", f"init_from={mlm}"])
    splits = recipe.splits()
    model, _ = build_model(recipe, recipe.task, splits)
    source = from_pretrained(mlm / "model").state_dict()
    state = model.state_dict()
    kept = [name for name in state if name.startswith(("input_adapter.", "encoder.", "decoder.cross_attention."))]
    assert kept and all(torch.equal(state[name], source[name]) for name in kept)
    assert "decoder.projection.weight" not in source and state["decoder.projection.weight"].shape == (4, 64)
    outputs = model.eval()(*splits.test.tensors[:2])
    assert outputs.shape == (900, splits.test.tensors[0].shape[1], 4)


def test_predictions_show_as_runs_of_one_class():
    ids = torch.tensor(ByteTokenizer().encode("Hallo there"))  # [CLS] H a l l o ...
    classes = torch.tensor([0] * 3 + [1] * 3 + [0] * 7)
    shown = marked(ids, classes, ids >= ByteTokenizer.OFFSET, LANGUAGES)
    assert shown == "[english] 'Ha' [german] 'llo' [english] ' there'"
