"""Hand-written digits with a convolutional network: two 3x3 convolutions with max pooling,
then Dense layers, on the bundled 8x8 UCI digits seen as images (8, 8, 1)."""

import fastnn as fnn
from fastnn.datasets import load_digits, train_test_split

X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split((X / 16.0).reshape(-1, 8, 8, 1), y,
                                                    test_size=0.25, seed=0, stratify=True)
model = fnn.Sequential([
    fnn.Conv2D(16, 3, padding="same", activation="relu"),   # 16 filters of 3x3x1
    fnn.MaxPooling2D(),                                      # 8x8 -> 4x4
    fnn.Conv2D(32, 3, padding="same", activation="relu"),   # 32 filters of 3x3x16
    fnn.MaxPooling2D(),                                      # 4x4 -> 2x2
    fnn.Flatten(),
    fnn.Dense(64, activation="relu"),
    fnn.Dense(10, activation="softmax")], input_shape=(8, 8, 1), seed=0)
model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(learning_rate=0.003),
              metrics=["accuracy"])
model.summary()
history = model.fit(X_train, y_train, epochs=15, batch_size=32,
                    validation_data=(X_test, y_test), verbose=2)
print("kernel of the first convolution:", model.layers[0].get_weights()[0].shape)  # (3, 3, 1, 16)
print("test accuracy:", model.evaluate(X_test, y_test)["accuracy"])
assert history.history["val_accuracy"][-1] > 0.96
