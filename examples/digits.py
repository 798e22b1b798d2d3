"""Hand-written digits: a 64-256-128-10 network on the bundled UCI digits."""

import fastnn as fnn
from fastnn.datasets import load_digits, train_test_split

X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, seed=0)
model = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(128, activation="relu"),
                        fnn.Dense(10, activation="softmax")], input_dim=64, seed=0)
model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9),
              metrics=["accuracy"])
model.summary()
history = model.fit(X_train, y_train, epochs=20, batch_size=32,
                    validation_data=(X_test, y_test), verbose=2)
print("test accuracy:", model.evaluate(X_test, y_test)["accuracy"])
assert history.history["val_accuracy"][-1] > 0.95
