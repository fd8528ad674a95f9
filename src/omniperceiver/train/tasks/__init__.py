"""One Task class per kind: classification, per-element regression (optical flow), per-element classification
(segmentation) and causal language modelling; each owns its model, module, metric, baseline, pictures and
``predict`` on files."""
