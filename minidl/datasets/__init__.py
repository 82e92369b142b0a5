"""Dataset loaders that work offline first: bundled digits, MNIST, Fashion-MNIST, text, speech, video."""
from minidl.datasets.digits import load_digits, train_test_split
from minidl.datasets.idx import parse_idx, read_idx
from minidl.datasets.mnist import load_fashion_mnist, load_mnist, load_mnist_5k
from minidl.datasets.moving_mnist import make_moving_digits
from minidl.datasets.speech import load_spoken_digits
from minidl.datasets.text import CharVocabulary, WordVocabulary, load_movie_reviews, load_shakespeare

__all__ = ["CharVocabulary", "WordVocabulary", "load_digits", "load_fashion_mnist", "load_mnist",
           "load_mnist_5k", "load_movie_reviews", "load_shakespeare", "load_spoken_digits",
           "make_moving_digits", "parse_idx", "read_idx", "train_test_split"]
