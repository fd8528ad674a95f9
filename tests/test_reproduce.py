"""`omniperceiver reproduce`: the seed's tables in miniature, listed, printed in the seed's shape beside the
seed's figures, and written as markdown and a bar chart."""

import pytest
from helpers import needs_espeak_ng

pytest.importorskip("lightning")
from omniperceiver.cli import main


def test_list_names_every_table(capsys):
    assert main(["reproduce", "--list"]) == 0
    assert capsys.readouterr().out.split()[0] == "fusion"


def test_an_unknown_table_is_one_line_naming_the_known_ones(capsys):
    assert main(["reproduce", "fusio"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no table named 'fusio'" in err and "fusion" in err


@needs_espeak_ng
def test_fusion_prints_the_seed_row_beside_ours_and_writes_the_table(tmp_path, capsys):
    assert main(["reproduce", "fusion", "--quick", "--jobs", "2", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| model / inputs | audio | image (video) | audio + image |" in out
    assert "| seed: Perceiver (mel spectrogram), mAP % | 38.4 | 25.8 | 43.2 |" in out
    assert (
        "| ours: Perceiver, one modality / early fusion |" in out
        and "| ours: late fusion (averaged logits) | - | - |" in out
    )
    assert (tmp_path / "table.md").read_text() in out
    assert (tmp_path / "table.png").read_bytes().startswith(b"\x89PNG")
    for run in ("audiovisual-image", "audiovisual-audio", "audiovisual-digits"):
        assert (tmp_path / run / "model" / "model.safetensors").is_file()
