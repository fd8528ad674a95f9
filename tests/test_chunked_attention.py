import math

import pytest
import torch

from omniperceiver.core import attend, causal_mask, key_padding_mask
from omniperceiver.core.kernels.chunked import BLOCK_VALUES, blocks, chunked_attention


def materialized(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def inputs(batch=3, heads=2, queries=10, keys=12, d=4, dv=6, dtype=torch.float64):
    torch.manual_seed(0)
    shapes = ((batch, heads, queries, d), (batch, heads, keys, d), (batch, heads, keys, dv))
    return [torch.randn(*shape, dtype=dtype, requires_grad=True) for shape in shapes]


MASKS = {
    "none": lambda: None,
    "key padding (B, 1, 1, M)": lambda: key_padding_mask(torch.arange(12) < torch.tensor([[12], [5], [9]]), 3, 12),
    "causal (O, M)": lambda: causal_mask(10, 12),
    "full (B, H, O, M)": lambda: torch.rand(3, 2, 10, 12, generator=torch.Generator().manual_seed(1)) < 0.7,
}


@pytest.mark.parametrize("block_values", [1 << 22, 2 * 10 * 12, 10 * 12, 3 * 12])  # one; per example; head; 3 rows
@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_values_and_gradients_equal_the_materialized_softmax(block_values, mask_kind):
    q, k, v = inputs()
    mask = MASKS[mask_kind]()
    if mask is not None:
        mask = mask | ~mask.any(-1, keepdim=True)  # every row sees a key, as attend guarantees
    out = chunked_attention(q, k, v, mask=mask, scale=1 / math.sqrt(4), block_values=block_values)
    expected = materialized(q, k, v, mask)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    for grad, want in zip(grads, torch.autograd.grad(expected, (q, k, v), grad_out), strict=True):
        torch.testing.assert_close(grad, want, atol=1e-12, rtol=1e-10)


def test_second_order_gradients_are_exact(single_thread):
    q, k, v = inputs()
    mask = causal_mask(10, 12)

    def attention(q, k, v):
        return chunked_attention(q, k, v, mask=mask, scale=0.3, block_values=2 * 5 * 12)  # blocks of 5 rows

    assert torch.autograd.gradgradcheck(attention, (q, k, v))


@pytest.mark.parametrize(
    ("queries", "keys", "groups", "row_blocks"),
    [
        (256, 256, 1, 1),  # the language model's latents at batch 8: one block of 8 examples x 8 heads
        (256, 2048, 8, 1),  # its encoder cross-attention: one example per block
        (2048, 256, 8, 1),  # its decoder
        (1024, 2048, 32, 1),  # a larger map: blocks of 2 heads
        (2048, 4096, 64, 2),  # one head's map over a block: blocks of 1,024 query rows of one head
    ],
)
def test_blocks_hold_at_most_block_values(queries, keys, groups, row_blocks):
    q, k = torch.empty(8, 8, queries, 32), torch.empty(8, 8, keys, 32)
    example_heads, rows = blocks(q, k, BLOCK_VALUES)
    assert (len(example_heads), len(rows)) == (groups, row_blocks)
    covered = torch.zeros(8, 8, queries, dtype=torch.int)
    for examples, heads in example_heads:
        for part in rows:
            assert covered[examples, heads, part].numel() * keys <= BLOCK_VALUES
            covered[examples, heads, part] += 1
    assert (covered == 1).all()


def saved_bytes(fn) -> tuple[int, set[int]]:
    """Bytes of the tensors that ``fn`` saves for backward, and their storages."""
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}
    return sum(storages.values()), set(storages)


def test_attend_keeps_nothing_but_its_inputs_for_narrow_qk_heads():
    """The language model's latent shapes (d = 32, dv = 160): no probabilities, no padded q and k are kept."""
    q, k, v = (t.detach().float().requires_grad_() for t in inputs(2, 8, 256, 256, 32, 160))
    inputs_bytes = sum(t.untyped_storage().nbytes() for t in (q, k, v))
    kept, storages = saved_bytes(lambda: attend(q, k, v))
    assert kept == inputs_bytes and storages == {t.untyped_storage().data_ptr() for t in (q, k, v)}
    probabilities = 2 * 8 * 256 * 256 * 4
    assert saved_bytes(lambda: materialized(q, k, v))[0] >= inputs_bytes + probabilities


def test_under_bf16_autocast_the_products_run_in_bf16_and_stay_close_to_fp32():
    q, k, v = (t.detach().float() for t in inputs(2, 4, 64, 96, 16, 48))
    expected = materialized(q, k, v)
    q16, k16, v16 = (t.bfloat16().requires_grad_() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = attend(q16, k16, v16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)
    grads = torch.autograd.grad(out.float().square().sum(), (q16, k16, v16))
    want = torch.autograd.grad(materialized(*(t.requires_grad_() for t in (q, k, v))).square().sum(), (q, k, v))
    for grad, reference in zip(grads, want, strict=True):
        assert grad.dtype == torch.bfloat16
        assert (grad.float() - reference).norm() <= 0.03 * reference.norm()


def test_torch_compile_traces_the_kernel_and_its_backward():
    """(attend picks the chunked kernel for these heads of unequal widths under torch.compile.)"""
    q, k, v = (t.detach().float().requires_grad_() for t in inputs())
    mask = causal_mask(10, 12)
    compiled = torch.compile(lambda q, k, v: attend(q, k, v, mask=mask)[0], fullgraph=True)
    out = compiled(q, k, v)
    expected = materialized(q, k, v, mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    for grad, want in zip(grads, torch.autograd.grad(expected.square().sum(), (q, k, v)), strict=True):
        torch.testing.assert_close(grad, want, atol=1e-5, rtol=1e-5)


def test_bf16_blocks_of_the_map_are_never_made_fp32():
    """The map's memory traffic bounds the kernel on the CPU: in bf16, forward and backward make no fp32 tensor
    of a block's size (an fp32 copy of each block ran the language model's cross-attention 2.8x slower)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    q, k, v = (t.detach().bfloat16().requires_grad_() for t in inputs(2, 2, 10, 12, 4, 6))
    block = 2 * 2 * 10 * 12
    wide_blocks = []

    class WatchDtypes(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.numel() >= block:
                wide_blocks.append(str(func))
            return out

    with WatchDtypes():
        out = chunked_attention(q, k, v, scale=0.5, block_values=block)
        out.backward(torch.ones_like(out))
    assert out.dtype == q.grad.dtype == torch.bfloat16
    assert wide_blocks == []


def test_gradients_are_laid_out_as_the_heads_of_linear_outputs():
    """q, k, v are heads of (B, M, H·d) Linear outputs: their gradients come in that layout, so that the Linear
    layers' backward products read contiguous (B, M, H·d) gradients (no copy, no strided product)."""
    torch.manual_seed(0)
    linear_outputs = [torch.randn(2, n, 3 * w, requires_grad=True) for n, w in ((10, 4), (12, 4), (12, 6))]
    q, k, v = (t.view(2, t.shape[1], 3, -1).transpose(1, 2) for t in linear_outputs)
    out = chunked_attention(q, k, v, scale=0.5, block_values=3 * 12)  # blocks of 4 query rows
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    assert [grad.stride() for grad in grads] == [t.stride() for t in (q, k, v)]
    assert all(grad.transpose(1, 2).flatten(2).is_contiguous() for grad in grads)


def test_keys_and_values_are_laid_out_for_the_products_once_per_call():
    """CPU bf16 heads are copied to a contiguous layout once, not once per block of query rows."""
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.manual_seed(0)
    linear_outputs = [torch.randn(1, n, 2 * w, dtype=torch.bfloat16) for n, w in ((10, 4), (12, 4), (12, 6))]
    q, k, v = (t.view(1, t.shape[1], 2, -1).transpose(1, 2) for t in linear_outputs)
    copied = []

    class WatchCopies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
            new = isinstance(out, torch.Tensor) and out.untyped_storage().data_ptr() not in inputs  # not a view
            if new and out.shape in (k.shape, v.shape):
                copied.append(tuple(out.shape))
            return out

    with WatchCopies():
        chunked_attention(q, k, v, scale=0.5, block_values=2 * 2 * 12)  # 5 blocks of 2 query rows
    assert sorted(copied) == sorted([tuple(k.shape), tuple(v.shape)])
