"""Column names of the sub-operation table, defined once. Every later stage reads these names.

One row is one F(X·Y) sub-operation of one layer: `count` independent products of an M×K
activation X with a K×N operand Y, followed by the element-wise F in the digital unit.
"""

LAYER = "layer"            # layer index in its stack; -1 before the stack (embeddings), n after it
STACK = "stack"            # "enc" or "dec" ("dec" for decoder-only, "enc" for encoder-only models)
BLOCK = "block"            # mha | xattn (cross-attention) | ffn | norm | head
OP = "op"                  # sub-operation name, e.g. q_proj, qk, rowsum, sv, ln1.mean
KIND = "kind"              # WS (Y is a weight matrix from the dense crossbar) or NW (Y is an activation)
AUX = "aux"                # True for products the paper adds (ones-vector sums, norm statistics):
                           # they are not matrix products of the reference model
CAUSAL_LEN = "causal_len"  # L > 0 if only the causal triangle of an L×L token grid is computed, else 0
COUNT = "count"            # independent instances (batch × K/V heads for attention), each M×K·K×N
M = "M"                    # rows of X (activation rows streamed through the crossbar)
K = "K"                    # reduction length
N = "N"                    # columns of Y (= sessions per instance)
F = "F"                    # element-wise function applied after the product
SESSIONS = "sessions"      # count × N: one session per column of Y (paper Eq. 4)
MACS = "macs"              # exact multiply-accumulates (causal triangle only, where causal_len > 0)
WEIGHT_PARAMS = "weight_params"  # K×N weight elements read from the dense crossbar (WS only; 0 for NW)
WEIGHT_BYTES = "weight_bytes"    # weight_params at the weight bit width
BIAS_PARAMS = "bias_params"      # bias elements added in F (WS ops of models with biases)
ACT_IN_BYTES = "act_in_bytes"    # activation bytes read: X, plus Y for NW products
ACT_OUT_BYTES = "act_out_bytes"  # activation bytes written: count × M × N
X_CACHE = "x_cache"        # where X is read from: D1 | D2 | T1 | T2 | S
Y_CACHE = "y_cache"        # where Y comes from: dense | D1 | D2 | T1 | T2 | S | ones
OUT_CACHE = "out_cache"    # where F(X·Y) is written: D1 | D2 | T1 | T2 | S | reg
SQRT_DIV = "sqrt_div_calls"  # calls of the square-root/divide unit (one per token per norm)

ALL = [LAYER, STACK, BLOCK, OP, KIND, AUX, CAUSAL_LEN, COUNT, M, K, N, F, SESSIONS, MACS,
       WEIGHT_PARAMS, WEIGHT_BYTES, BIAS_PARAMS, ACT_IN_BYTES, ACT_OUT_BYTES,
       X_CACHE, Y_CACHE, OUT_CACHE, SQRT_DIV]

CACHES = ("D1", "D2", "T1", "T2", "S")
