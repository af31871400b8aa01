"""EHR WordPiece: trained on what it is given (train only), loadable by AutoTokenizer, OOV counted by hand."""
from transformers import AutoTokenizer

from bertxml_lib.models.offshelf import load_offshelf_tokenizer, offshelf_model_dir
from bertxml_lib.text.tokenizer import oov_per_note, oov_summary, train_wordpiece

TRAIN = ["patient with hypertension on lisinopril and hyperlipidemia on atorvastatin"] * 30 + \
        ["denies chest pain . htn well controlled . continue metformin for dm2"] * 30


def test_vocabulary_comes_from_training_text_only(tmp_path):
    tok = train_wordpiece(TRAIN, vocab_size=300, min_frequency=2, out_dir=tmp_path / "tok")
    vocab = tok.get_vocab()
    assert "lisinopril" in vocab and "atorvastatin" in vocab
    # A word that appears only in held-out notes cannot be a whole vocabulary entry.
    assert "levothyroxine" not in vocab
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert again("htn on lisinopril")["input_ids"] == tok("htn on lisinopril")["input_ids"]
    assert again.cls_token_id is not None and again.mask_token == "[MASK]"


def test_oov_counts_split_and_unknown_words(tmp_path):
    tok = train_wordpiece(TRAIN, vocab_size=300, min_frequency=2, out_dir=tmp_path / "tok")
    # "hypertension" whole; "pains" split into pain + ##s; "ß" -> [UNK].
    df = oov_per_note(tok, ["hypertension pains ß", ""])
    assert df.loc[0, "words"] == 3
    assert df.loc[0, "split_words"] == 1 and df.loc[0, "unk_words"] == 1 and df.loc[0, "oov_words"] == 2
    assert df.loc[1].tolist() == [0, 0, 0, 0, 0]
    summary = oov_summary({"ours": df})
    assert summary.loc[0, "oov_words_per_note"] == 1.0


def test_general_vocabulary_is_bert_base_uncased_offline():
    assert (offshelf_model_dir() / "config.json").exists()
    general = load_offshelf_tokenizer()
    assert len(general) == 30522
    assert (general.pad_token_id, general.unk_token_id, general.cls_token_id, general.sep_token_id,
            general.mask_token_id) == (0, 100, 101, 102, 103)
    df = oov_per_note(general, ["htn on lisinopril"])
    assert df.loc[0, "words"] == 3 and df.loc[0, "oov_words"] >= 2  # 'htn' and 'lisinopril' are not whole words


def test_oov_counts_whole_long_notes_despite_shipped_truncation():
    general = load_offshelf_tokenizer()
    long_note = " ".join(["blood"] * 400)  # one whole-word token each
    df = oov_per_note(general, [long_note])
    assert df.loc[0, "words"] == 400 and df.loc[0, "tokens"] == 400


def test_training_is_deterministic_across_processes(tmp_path):
    """tokenizers numbers `##c` tokens in hash-map order (huggingface/tokenizers#1794), different in every
    process; `train_wordpiece` fixes them, so the same notes give the same vocabulary byte for byte."""
    import subprocess
    import sys

    from bertxml_lib.data.synthetic import generate_synthetic

    notes, _ = next(generate_synthetic(n_patients=30, n_codes=40, seed=0))
    (tmp_path / "notes.txt").write_text("\n".join(t.replace("\n", " ") for t in notes["text"]))
    code = ("import sys; from bertxml_lib.text.tokenizer import train_wordpiece; "
            "train_wordpiece(open(sys.argv[1]).read().split('\\n'), 1500, 2, sys.argv[2])")
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "notes.txt"), str(tmp_path / name)], check=True)
    files = [(tmp_path / name / "tokenizer.json").read_bytes() for name in ("a", "b", "c")]
    assert files[0] == files[1] == files[2]
    tok = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]  # `##c` are plain vocabulary
    assert tok.decode(tok("hip fracture")["input_ids"], skip_special_tokens=True) == "hip fracture"
