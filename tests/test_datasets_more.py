"""The text, speech and moving-digit datasets the examples use."""
import shutil

import numpy as np
import pytest

from minidl.datasets import CharVocabulary, WordVocabulary, make_moving_digits
from minidl.datasets.text import tokenize


def test_char_vocabulary_round_trips():
    vocabulary = CharVocabulary("to be, or not to be")
    ids = vocabulary.encode("not to be")
    assert ids.dtype == np.int64 and vocabulary.decode(ids) == "not to be"
    assert len(vocabulary) == len(set("to be, or not to be"))


def test_word_vocabulary_pads_cuts_and_marks_unknown_words():
    vocabulary = WordVocabulary(["a good film", "a bad film", "good good"], max_size=4)
    assert vocabulary.words[:2] == ["<pad>", "<unk>"] and vocabulary.words[2] == "good"
    ids = vocabulary.encode(["good film today", "a"], length=4)
    assert ids.shape == (2, 4) and ids[0, 3] == WordVocabulary.PAD
    assert ids[0, 2] == WordVocabulary.UNKNOWN and tokenize("It's good!") == ["it's", "good", "!"]


def test_moving_digits_keep_the_digit_inside_the_frame():
    images = np.zeros((3, 28, 28), np.float32)
    images[:, 10:18, 12:16] = 1.0
    clips, labels = make_moving_digits(images, np.array([4, 5, 6]), count=5, frames=6, size=36)
    assert clips.shape == (5, 1, 6, 36, 36) and clips.dtype == np.float32
    assert set(labels) <= {4, 5, 6}
    mass = clips.sum(axis=(3, 4))  # (5, 1, 6): the whole digit is visible in every frame
    np.testing.assert_allclose(mass, 32.0)
    assert not np.allclose(clips[:, :, 0], clips[:, :, -1]), "the digits should move"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng: apt-get install -y espeak-ng")
def test_spoken_digits_for_a_few_voices(tmp_path, monkeypatch):
    from minidl.datasets import load_spoken_digits

    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    audio, labels, voices = load_spoken_digits(voices=2)
    assert audio.shape == (80, 8000) and audio.dtype == np.float32
    assert sorted(set(voices)) == [0, 1] and np.bincount(labels).tolist() == [8] * 10
    assert np.abs(audio).max() <= 1 and (np.abs(audio) > 0.01).any()
    assert list(tmp_path.rglob("spoken_digits_2_voices.npz"))
