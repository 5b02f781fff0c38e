"""streamrec models: pure numpy/torch logic (no Kafka): vectors, candidates, scoring, encoders."""
