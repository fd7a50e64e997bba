"""The events a webhook can subscribe to, by the names they carry on the wire.

Plain constants (no Django): the models, services, serializers and the console's form read them.
``ping`` is not subscribable: it is what the "test" action sends, to any webhook.
"""

from __future__ import annotations

TRAINING_STARTED = "training.started"
TRAINING_FINISHED = "training.finished"
TRAINING_FAILED = "training.failed"
SUGGESTIONS_READY = "suggestions.ready"
PING = "ping"

# Subscribable events, with what a person reads in the console and the schema.
EVENTS = {
    TRAINING_STARTED: "A worker started training a model version",
    TRAINING_FINISHED: "A model version finished training (TRAINED)",
    TRAINING_FAILED: "A model version failed to train (FAILED)",
    SUGGESTIONS_READY: "A task's pool was scored: new suggestions to label",
}
