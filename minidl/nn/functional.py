"""The functional form of every layer and loss (``import minidl.nn.functional as F``)."""
from minidl.ops import (gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, softplus,  # noqa: F401
                        tanh)
from minidl.ops.attention import scaled_dot_product_attention  # noqa: F401
from minidl.ops.multihead_attention import multi_head_attention_forward  # noqa: F401
from minidl.ops.conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,  # noqa: F401
                             conv_transpose3d)
from minidl.ops.dropout import dropout  # noqa: F401
from minidl.ops.embedding import embedding  # noqa: F401
from minidl.ops.linalg import linear  # noqa: F401
from minidl.ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                             cross_entropy, huber_loss, kl_div, l1_loss, mse_loss, nll_loss,
                             smooth_l1_loss)
from minidl.ops.normalization import batch_norm, group_norm, layer_norm  # noqa: F401
from minidl.ops.pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d,  # noqa: F401
                                adaptive_avg_pool3d, avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d,
                                max_pool2d, max_pool3d)
from minidl.ops.shape import pad  # noqa: F401
