"""gRPC servicers: proto in, one service call, proto out."""
