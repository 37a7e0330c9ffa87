"""Cost model: op costs of a network (ONNX graph or PyTorch module) and the latency model that prices them."""
