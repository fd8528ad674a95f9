import pytest
import torch
from safetensors.torch import load_file

import omniperceiver as op
from omniperceiver.core import ARConfig
from omniperceiver.inference import generate
from omniperceiver.models.perceiver_ar import drop_prefix

pytestmark = pytest.mark.usefixtures("single_thread")


def small_ar(*, channels=32, num_latents=8, max_seq_len=32, **overrides) -> op.PerceiverAR:
    ar = ARConfig(channels=channels, num_latents=num_latents, num_heads=4, num_self_attention_layers=2)
    options = dict(vocab_size=40, max_seq_len=max_seq_len, ar=ar)
    options.update(overrides)
    return op.PerceiverARConfig(**options).build().eval()


def test_logits_at_t_have_zero_gradient_wrt_later_embeddings():
    model = small_ar(absolute_positions=True)
    embedded = []
    model.embedding.register_forward_hook(lambda module, inputs, output: embedded.append(output))
    logits = model(torch.randint(0, 40, (2, 20)), num_latents=8)  # latents = positions 12..19
    weights = torch.randn(40)
    for latent in (0, 4, 7):
        position = 12 + latent
        (grad,) = torch.autograd.grad((logits[:, latent] @ weights).sum(), embedded[0], retain_graph=True)
        assert grad[:, position + 1 :].abs().sum() == 0
        assert grad[:, : position + 1].abs().amax(-1).min() > 0  # every earlier token matters


@pytest.mark.parametrize("absolute_positions", [False, True])
def test_left_padding_and_cache_give_the_logits_of_each_sequence_alone(absolute_positions):
    model = small_ar(absolute_positions=absolute_positions)
    short, long = torch.randint(0, 40, (1, 5)), torch.randint(0, 40, (1, 9))
    ids = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :4] = False
    together = model(ids, mask=mask, num_latents=3)
    torch.testing.assert_close(together[:1], model(short, num_latents=3), atol=2e-5, rtol=0)
    torch.testing.assert_close(together[1:], model(long, num_latents=3), atol=2e-5, rtol=0)
    cache = model.new_cache()  # the same through the cache, one token at a time
    model(ids[:, :6], mask=mask[:, :6], num_latents=2, cache=cache)
    for t in range(6, 9):
        step = model(ids[:, t : t + 1], mask=mask[:, t : t + 1], cache=cache)
        full = model(ids[:, : t + 1], mask=mask[:, : t + 1], num_latents=t - 3)[:, -1:]
        torch.testing.assert_close(step, full, atol=2e-5, rtol=0)


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_round_trip_with_tied_weights_stored_once(tmp_path, tied):
    model = small_ar(tied_output=tied, absolute_positions=True, pad_id=0)
    assert (model.output.weight is model.embedding.weight) == tied
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert "embedding.weight" in stored and ("output.weight" in stored) != tied
    assert ("output.bias" in stored) != tied
    loaded = op.PerceiverAR.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert (loaded.output.weight is loaded.embedding.weight) == tied
    ids = torch.randint(0, 40, (2, 12))
    assert torch.equal(loaded(ids), model(ids))


def test_prefix_dropout_acts_only_in_training_and_only_on_the_prefix():
    model = small_ar(prefix_dropout=0.5)
    plain = small_ar()
    plain.load_state_dict(model.state_dict())
    ids = torch.randint(0, 40, (2, 24))
    evaluated = model(ids)
    torch.testing.assert_close(evaluated, plain(ids))  # inactive in eval
    model.train()
    assert (model(ids) - evaluated).abs().amax() > 1e-3  # half of the 16 prefix tokens are gone
    torch.testing.assert_close(model(ids[:, :8]), plain(ids[:, :8]))  # all 8 tokens are latents: nothing to drop


def test_drop_prefix_keeps_the_latents_and_the_positions_and_padding_of_the_kept_tokens():
    columns = torch.arange(10.0).expand(3, -1)[..., None]  # x (B, L, 1) holds each column's index
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, :4] = False
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    x, kept_positions, kept_mask = drop_prefix(columns, positions, mask, num_latents=4, rate=0.5)
    kept = x[..., 0].long()  # (3, 3 of the 6 prefix columns + 4 latents)
    assert kept.shape == (3, 7)
    assert (kept[:, -4:] == torch.arange(6, 10)).all() and (kept[:, :3] < 6).all()
    assert (kept.diff(dim=1) > 0).all()  # in order
    assert torch.equal(kept_positions, positions.gather(1, kept))
    assert torch.equal(kept_mask, mask.gather(1, kept))


def test_config_and_input_errors():
    with pytest.raises(ValueError, match=r"ar.num_latents=8 is invalid: expected at most max_seq_len \(4\)"):
        small_ar(max_seq_len=4)
    with pytest.raises(ValueError, match=r"prefix_dropout=1.0 is invalid: expected a fraction in \[0, 1\)"):
        small_ar(prefix_dropout=1.0)
    with pytest.raises(ValueError, match=r"pad_id=40 is invalid: expected None or an id in \[0, 40\)"):
        small_ar(pad_id=40)
    with pytest.raises(ValueError, match=r"vocab_size=0 is invalid: expected a positive integer"):
        small_ar(vocab_size=0)
    model = small_ar()
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 40\) \(vocab_size\), got values in \[0, 40\]"):
        model(torch.tensor([[0, 40]]))
    with pytest.raises(ValueError, match=r"expected at most max_seq_len=32 positions \(cached ones included\), got 33"):
        model(torch.zeros(1, 33, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 30, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"expected at most max_seq_len=32 positions .*, got 33"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    empty = (torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 5, dtype=torch.long))
    for bad in (torch.zeros(5, dtype=torch.long), torch.zeros(1, 5), *empty):
        with pytest.raises(ValueError, match=r"ids must be an int64 or int32 tensor of shape \(B, L\) with B, L >= 1"):
            model(bad)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(B, L\) = \(1, 5\)"):
        model(torch.zeros(1, 5, dtype=torch.long), mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"num_latents=9 is invalid: expected None or an integer in \[1, 8\]"):
        model(torch.zeros(1, 12, dtype=torch.long), num_latents=9)


def test_learns_to_copy_a_sequence_after_a_separator():
    """[x SEP x] with x 8 random symbols: the model must fetch each second-half token from the prefix through
    the cross-attention. Trained on random crops with random latent counts (the layouts generation uses), then
    evaluated by cached greedy generation of x from [x SEP]."""
    half, symbols, sep, batch_size = 8, 8, 0, 64
    model = small_ar(channels=64, vocab_size=symbols + 1, max_seq_len=2 * half).train()

    def sequences(size):
        x = torch.randint(1, symbols + 1, (size, half))
        return torch.cat([x, torch.full((size, 1), sep), x], dim=1)

    steps = 300
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    for _ in range(steps):
        seq = sequences(batch_size)
        length = int(torch.randint(half + 1, 2 * half + 1, ()))  # the inputs end at SEP or later
        n = int(torch.randint(1, 9, ()))
        logits = model(seq[:, :length], num_latents=n)  # predicts positions length - n + 1 .. length
        targets = seq[:, length - n + 1 : length + 1]
        second_half = (torch.arange(length - n + 1, length + 1) > half).expand(batch_size, -1)
        loss = torch.nn.functional.cross_entropy(logits[second_half], targets[second_half])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    seq = sequences(256)
    copied = torch.stack(generate(model.eval(), seq[:, : half + 1], half, temperature=0))
    accuracy = (copied == seq[:, half + 1 :]).float().mean().item()
    assert accuracy >= 0.99, accuracy


def test_the_same_weights_read_with_fewer_or_more_latents():
    torch.manual_seed(0)
    model = small_ar(num_latents=6)
    ids = torch.randint(0, 40, (2, 20))
    fewer, more = model.with_num_latents(3), model.with_num_latents(12)
    with torch.no_grad():
        torch.testing.assert_close(fewer(ids), model(ids, num_latents=3))  # what the model itself does with 3
        assert more(ids).shape == (2, 12, 40) and more.config.ar.num_latents == 12
        assert not torch.allclose(more(ids)[:, -6:], model(ids))  # the last 6 also attend to 6 earlier latents
        assert generate(more, [ids[0, :5]], 4, temperature=0)[0].shape == (4,)  # its cache keeps 12 latents
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), more.parameters(), strict=True))
