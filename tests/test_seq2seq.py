"""UniLM's sequence-to-sequence mask: a source read bidirectionally, a target causally, in one Perceiver AR
with shared parameters that also runs as a plain causal model."""

import pytest
import torch
import torch.nn.functional as F

import omniperceiver as op
from omniperceiver.core import ARConfig, seq2seq_mask
from omniperceiver.inference import generate
from omniperceiver.inference.generate import left_pad

pytestmark = pytest.mark.usefixtures("single_thread")


def test_seq2seq_mask_against_hand_written_ones():
    positions = torch.arange(5)[None]
    by_hand = torch.tensor(
        [
            [1, 1, 1, 0, 0],  # source: sees the whole source (0-2)
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],  # target: sees what came before it
            [1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(seq2seq_mask(positions, positions, torch.tensor([3]))[0], by_hand)
    assert torch.equal(seq2seq_mask(positions, positions, torch.tensor([0]))[0], torch.ones(5, 5).tril().bool())
    assert seq2seq_mask(positions, positions, torch.tensor([5]))[0].all()  # all source: bidirectional
    last_two = seq2seq_mask(positions[:, 3:], positions, torch.tensor([4]))[0]  # queries = the last 2 of 5
    assert torch.equal(last_two, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))


def small_ar(num_latents=10, max_seq_len=10, vocab_size=20):
    ar = ARConfig(channels=32, num_latents=num_latents, num_heads=4, num_self_attention_layers=2)
    return op.PerceiverARConfig(vocab_size=vocab_size, max_seq_len=max_seq_len, ar=ar).build().eval()


@pytest.mark.parametrize("num_latents", [10, 6])
def test_the_source_is_read_bidirectionally_and_the_target_causally(num_latents):
    torch.manual_seed(0)
    model = small_ar(num_latents=num_latents)
    embedded = []
    model.embedding.register_forward_hook(lambda module, inputs, output: embedded.append(output))
    ids = torch.randint(0, 20, (1, 10))

    def influence(source_lengths):
        """|d logits at position p / d embedding at position q| (L, L), zero where q cannot reach p."""
        embedded.clear()
        logits = model(ids, source_lengths=source_lengths)[0]  # (n, V) of the last n positions
        first = 10 - logits.shape[0]
        rows = torch.zeros(10, 10)
        for i in range(logits.shape[0]):
            (grad,) = torch.autograd.grad(logits[i].sum(), embedded[0], retain_graph=True)
            rows[first + i] = grad[0].abs().sum(-1)
        return rows[first:]

    seq2seq, causal = influence(torch.tensor([7])), influence(None)
    first = 10 - num_latents
    for p in range(first, 10):
        row, causal_row = seq2seq[p - first], causal[p - first]
        assert (causal_row[p + 1 :] == 0).all()
        if p < 7:  # a source position sees the whole source, and nothing after it
            assert (row[:7] > 0).all() and (row[7:] == 0).all()
        else:  # a target position sees everything before it, nothing after
            assert (row[: p + 1] > 0).all() and (row[p + 1 :] == 0).all()


def test_left_padded_sources_of_different_lengths_give_each_sequence_alone():
    torch.manual_seed(1)
    model = small_ar()
    rows, sources = [torch.randint(0, 20, (10,)), torch.randint(0, 20, (6,))], [4, 2]
    ids, mask = left_pad(rows, 0)
    with torch.no_grad():
        together = model(ids, mask=mask, source_lengths=torch.tensor(sources))
        for i, (row, source) in enumerate(zip(rows, sources, strict=True)):
            alone = model(row[None], source_lengths=torch.tensor([source]))
            torch.testing.assert_close(together[i, -alone.shape[1] :], alone[0], atol=1e-5, rtol=1e-5)


def test_generate_with_a_source_is_the_same_with_and_without_the_cache():
    """Full passes of 8 latents cover each prompt, so the source latents read the whole source; the cached
    steps continue causally and give the tokens a full pass per token gives."""
    torch.manual_seed(2)
    model = small_ar(num_latents=12, max_seq_len=24)
    prompts = [torch.randint(0, 20, (7,)), torch.randint(0, 20, (4,))]
    options = dict(temperature=0, source_lengths=[5, 4], refill_latents=8)
    cached = generate(model, prompts, 20, **options)
    recomputed = generate(model, prompts, 20, **options, use_cache=False)
    assert all(torch.equal(a, b) for a, b in zip(cached, recomputed, strict=True))
    with torch.no_grad():  # and the source was read bidirectionally: not the causal model's logits
        read = model(prompts[0][None], num_latents=7, source_lengths=torch.tensor([5]))
        assert not torch.allclose(read, model(prompts[0][None], num_latents=7))
    with pytest.raises(ValueError, match=r"source_lengths must give each of the 2 prompts a length in \[0, its"):
        generate(model, prompts, 3, source_lengths=[8, 1])


def test_one_model_learns_to_reverse_a_source_in_both_modes():
    """Sequences [source of 4 digits] [SEP] [the source reversed]; one model trained with teacher forcing,
    every other step with the source read bidirectionally (source length 5: the digits and SEP), the others
    causally; the loss only on the target. Greedy decoding then reverses held-out sources in both modes."""
    torch.manual_seed(0)
    sep = 1
    model = small_ar(num_latents=8, max_seq_len=8, vocab_size=12).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def batch(size):
        source = torch.randint(2, 12, (size, 4))
        return torch.cat([source, torch.full((size, 1), sep), source.flip(1)], dim=1)  # (B, 9)

    for step in range(800):
        sequences = batch(64)
        sources = torch.full((64,), 5) if step % 2 else None
        logits = model(sequences[:, :-1], source_lengths=sources)[:, -4:]  # the 4 target positions
        loss = F.cross_entropy(logits.flatten(0, 1), sequences[:, -4:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = batch(200)
    for sources in ([5] * 200, None):
        reversed_ = generate(model, held_out[:, :5], 4, temperature=0, source_lengths=sources)
        exact = torch.stack(reversed_).eq(held_out[:, 5:]).all(1).float().mean()
        assert exact > 0.75, (sources is not None, exact)  # 0.89-1.0 over seeds 0-5
