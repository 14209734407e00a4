"""One Trainer for every model; a Task says what differs (data, parts, batch -> loss)."""

from audiolm.train.task import ItemKey, StepOutput, Task

__all__ = ["ItemKey", "StepOutput", "Task", "TrainConfig", "Trainer", "add_training_arguments", "train_from_args"]


def __getattr__(name):
    if name in ("TrainConfig", "Trainer", "add_training_arguments", "train_from_args", "resolve_model_config"):
        from audiolm.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
