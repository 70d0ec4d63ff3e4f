"""ecg_keras: PTB-XL 12-lead ECGs -> TFRecords -> STFT spectrograms -> Keras CNNs.

Importing the package is cheap: TensorFlow is imported by the modules that need it.
"""
