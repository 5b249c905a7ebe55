"""The text classification transformer (keras.io/examples/nlp/text_classification_with_transformer), small:
a TransformerBlock layer (MultiHeadAttention, a Sequential feed-forward, LayerNorms) nested in the model."""
import keras

L = keras.layers
PARAMS = {"maxlen": 64, "vocab": 2000, "embed_dim": 32, "heads": 2, "ff_dim": 32}


class TransformerBlock(L.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
        self.dropout1 = L.Dropout(rate)
        self.dropout2 = L.Dropout(rate)

    def call(self, inputs):
        attn_output = self.dropout1(self.att(inputs, inputs))
        out1 = self.layernorm1(inputs + attn_output)
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))


class TokenAndPositionEmbedding(L.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = keras.ops.arange(0, keras.ops.shape(x)[-1], 1)
        return self.token_emb(x) + self.pos_emb(positions)


def build_model(maxlen=64, vocab=2000, embed_dim=32, heads=2, ff_dim=32):
    inputs = keras.Input((maxlen,), dtype="int32")
    x = TokenAndPositionEmbedding(maxlen, vocab, embed_dim)(inputs)
    x = TransformerBlock(embed_dim, heads, ff_dim)(x)
    x = L.GlobalAveragePooling1D()(x)
    x = L.Dense(20, activation="relu")(L.Dropout(0.1)(x))
    return keras.Model(inputs, L.Dense(2, activation="softmax")(L.Dropout(0.1)(x)), name="text_transformer")
