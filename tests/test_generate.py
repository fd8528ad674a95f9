import pytest
import torch
from helpers import random_ar

from omniperceiver.inference import Sampling, generate

pytestmark = pytest.mark.usefixtures("single_thread")


def seeded(seed):
    return torch.Generator(torch.get_default_device()).manual_seed(seed)  # on the test device


def prompts(*lengths):
    return [torch.randint(0, 50, (n,)) for n in lengths]


@pytest.mark.parametrize(
    ("refill_latents", "absolute_positions"), [(None, False), (1, False), (8, False), (None, True)]
)
def test_cached_greedy_equals_uncached_greedy_past_max_seq_len(refill_latents, absolute_positions):
    model = random_ar(absolute_positions=absolute_positions)
    batch = prompts(3, 12, 20)  # shorter and longer than the 8 latents; 20 + 40 tokens slide past 24
    options = dict(temperature=0, refill_latents=refill_latents)
    cached = generate(model, batch, 40, **options)
    uncached = generate(model, batch, 40, use_cache=False, **options)
    for a, b in zip(cached, uncached, strict=True):
        assert len(a) == 40 and torch.equal(a, b)
    assert len({tuple(a.tolist()) for a in cached}) == 3


def test_the_cache_feeds_one_token_per_step_between_full_passes():
    """8 latents, 4 of them refilled: a full pass over the context, then 4 steps of one new token each (the
    rest comes from the cache), then the next full pass. Without the cache every step is a full pass."""
    model = random_ar()
    lengths = []
    model.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))  # ids (B, L)
    generate(model, prompts(6), 12, temperature=0)
    assert lengths == [6, 1, 1, 1, 1, 11, 1, 1, 1, 1, 16, 1]
    lengths.clear()
    generate(model, prompts(6), 12, temperature=0, use_cache=False)
    assert lengths == list(range(6, 18))


def test_refilling_all_latents_is_a_full_forward_pass_over_the_last_max_seq_len_tokens_per_token():
    model = random_ar()
    context = torch.randint(0, 50, (1, 20))
    expected = []
    for _ in range(10):  # 20 + 10 tokens: the context slides past max_seq_len = 24
        expected.append(int(model(context[:, -24:])[0, -1].argmax()))
        context = torch.cat([context, torch.tensor([expected[-1:]])], dim=1)
    assert generate(model, context[:, :20], 10, temperature=0, refill_latents=8)[0].tolist() == expected


def test_a_prompt_shorter_than_the_latents():
    model = random_ar()
    prompt = torch.tensor([[7]])  # one token, 8 latents
    cached = generate(model, prompt, 12, temperature=0)[0]
    assert torch.equal(cached, generate(model, prompt, 12, temperature=0, use_cache=False)[0])
    assert cached[0] == model(prompt)[0, -1].argmax()


def test_a_left_padded_batch_gives_each_prompt_its_tokens_alone():
    model = random_ar()
    batch = prompts(2, 9, 17, 5)
    together = generate(model, batch, 30, temperature=0)
    for prompt, tokens in zip(batch, together, strict=True):
        assert torch.equal(generate(model, [prompt], 30, temperature=0)[0], tokens)


def test_top_k_1_is_greedy_and_sampling_follows_the_generator():
    model = random_ar()
    batch = prompts(4, 11)
    greedy = generate(model, batch, 20, temperature=0)
    top_1 = generate(model, batch, 20, temperature=1.5, top_k=1, generator=seeded(1))
    assert all(torch.equal(a, b) for a, b in zip(greedy, top_1, strict=True))
    sampled = [generate(model, batch, 20, temperature=2.0, generator=seeded(2)) for _ in "ab"]
    assert all(torch.equal(a, b) for a, b in zip(*sampled, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(greedy, sampled[0], strict=True))


def test_top_k_and_top_p_keep_the_most_likely_tokens():
    logits = torch.tensor([[0.6, 0.25, 0.1, 0.05]]).log()
    inf = float("-inf")
    assert Sampling(top_k=2).filter(logits)[0, 2:].tolist() == [inf, inf]
    nucleus = Sampling(top_p=0.5).filter(logits)[0]  # 0.6 alone reaches 0.5
    assert nucleus[0] == logits[0, 0] and nucleus[1:].tolist() == [inf, inf, inf]
    assert Sampling(top_p=0.8).filter(logits)[0].isfinite().tolist() == [True, True, False, False]
    generator = seeded(0)
    draws = Sampling(top_p=0.5)(logits.expand(1000, -1), generator)
    assert (draws == 0).all()
    draws = Sampling(top_p=0.8)(logits.expand(1000, -1), generator)
    assert set(draws.tolist()) == {0, 1} and 0.6 < (draws == 0).float().mean() < 0.8  # 0.6 / 0.85 = 0.71


def test_eos_stops_a_row_the_others_go_on_and_stream_sees_every_step():
    model = random_ar(pad_id=1)
    batch = prompts(6, 10)
    free = generate(model, batch, 16, temperature=0)
    first = free[0].tolist()
    stop = next(t for t in range(1, 16) if first[t] not in first[:t])  # row 0's first step with a new token
    eos = first[stop]
    streamed = []
    stopped = generate(model, batch, 16, temperature=0, eos_id=eos, stream=streamed.append)
    assert torch.equal(stopped[0], free[0][: stop + 1])  # ends with its eos
    hits = (free[1] == eos).nonzero()
    assert torch.equal(stopped[1], free[1][: int(hits[0]) + 1] if len(hits) else free[1])
    steps = torch.stack(streamed, dim=1)  # (B, steps): finished rows get pad_id
    assert torch.equal(steps[0, : stop + 1], stopped[0]) and (steps[0, stop + 1 :] == 1).all()
    assert torch.equal(steps[1, : len(stopped[1])], stopped[1])
    alone = []
    generate(model, batch[:1], 16, temperature=0, eos_id=eos, stream=alone.append)
    assert len(alone) == stop + 1  # generation ends when every row has finished


def test_generation_errors():
    model = random_ar()
    for bad, message in [
        (torch.zeros(5, dtype=torch.long), r"a prompt tensor must have shape \(B, L\), got \(5,\)"),
        ([], "expected at least one prompt, got none"),
        ([[1, 2], []], r"prompt 1 must be a non-empty 1-D sequence of ids, got shape \(0,\)"),
        ([[1, 50]], r"ids must lie in \[0, 50\) \(vocab_size\), got values in \[1, 50\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            generate(model, bad, 3)
    for options, message in [
        (dict(temperature=-1.0), r"temperature=-1.0 is invalid: expected a number >= 0 \(0 = greedy\)"),
        (dict(top_k=0), "top_k=0 is invalid: expected None or an integer >= 1"),
        (dict(top_p=0.0), r"top_p=0.0 is invalid: expected None or a number in \(0, 1\]"),
        (dict(refill_latents=9), r"refill_latents=9 is invalid: expected None or an integer in \[1, 8\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            generate(model, [[1, 2]], 3, **options)
    assert [len(t) for t in generate(model, [[1, 2], [3]], 0)] == [0, 0]
