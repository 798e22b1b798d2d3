"""Forecasting a real time series with an LSTM: the yearly sunspot numbers (1700-2008).

The model reads the last 16 years and predicts the next one. It learns on the first 80% of
the series and is scored on the last 20%, which it never saw, against the persistence forecast
(next year = this year), the baseline every forecast must beat.
"""

import numpy as np

import fastnn as fnn
from fastnn.datasets import load_sunspots

WINDOW = 16
years, values = load_sunspots("yearly")
cut = int(round(len(values) * 0.8))
mean, scale = values[:cut].mean(), values[:cut].std()      # from the training part only
z = (values - mean) / scale


def windows(targets):
    """Inputs (n, WINDOW, 1): the WINDOW values before each target; targets (n, 1)."""
    X = np.stack([z[t - WINDOW:t] for t in targets])[..., None]
    return X, z[targets][:, None]


X_train, y_train = windows(np.arange(WINDOW, cut))
X_test, y_test = windows(np.arange(cut, len(values)))

model = fnn.Sequential([fnn.LSTM(32), fnn.Dense(1)], input_shape=(WINDOW, 1), seed=0)
model.compile(loss="mse", optimizer=fnn.Adam(learning_rate=0.005))
model.summary()
model.fit(X_train, y_train, epochs=150, batch_size=16, verbose=0)

forecast = model.predict(X_test)[:, 0] * scale + mean
actual = values[cut:]
lstm_mae = np.abs(forecast - actual).mean()
persistence_mae = np.abs(values[cut - 1:-1] - actual).mean()
print(f"held-out years {int(years[cut])}-{int(years[-1])}: LSTM MAE {lstm_mae:.1f}, "
      f"persistence MAE {persistence_mae:.1f} ({1 - lstm_mae / persistence_mae:.0%} better)")
for year, a, f in list(zip(years[cut:], actual, forecast))[-5:]:
    print(f"  {int(year)}: observed {a:6.1f}, forecast {f:6.1f}")
assert lstm_mae < 0.8 * persistence_mae
