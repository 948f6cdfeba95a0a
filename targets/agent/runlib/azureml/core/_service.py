"""What the real SDK does by calling the Azure ML service: here, a clear error that names
the call and what to use instead."""

from typing import Any, Optional

from ..exceptions import ServiceCallError

DATA = (
    "pass the data to the run as an input (a path in the run configuration's arguments, "
    "or a datastore registered on the client with `targets datastores add`) and read that "
    "path in the script"
)
MODELS = (
    "write the model into ./outputs (run.upload_file or plain file writes); it comes back "
    "with the run's outputs, and `targets runs download RUN` fetches it"
)
SUBMIT = (
    "submit runs from the control script on the client (targets.azureml), not from inside a run"
)
SECRETS = "pass the secret as an environment variable of the run"


def refuse(call: str, instead: str) -> Any:
    raise ServiceCallError(call, instead)


class Workspace:
    """The workspace as seen from inside a run: names only, no service."""

    def __init__(
        self, name: str = "", subscription_id: str = "", resource_group: str = "", **_: Any
    ) -> None:
        self.name = name
        self.subscription_id = subscription_id
        self.resource_group = resource_group

    def __repr__(self) -> str:
        return "Workspace(name=%r)" % self.name

    @staticmethod
    def from_config(*args: Any, **kwargs: Any) -> Any:
        return refuse(
            "Workspace.from_config()", "use run.experiment.workspace for its name; " + DATA
        )

    @staticmethod
    def get(*args: Any, **kwargs: Any) -> Any:
        return refuse("Workspace.get()", "use run.experiment.workspace for its name; " + DATA)

    def get_default_datastore(self) -> Any:
        return refuse("Workspace.get_default_datastore()", DATA)

    @property
    def datastores(self) -> Any:
        return refuse("Workspace.datastores", DATA)

    @property
    def datasets(self) -> Any:
        return refuse("Workspace.datasets", DATA)

    @property
    def models(self) -> Any:
        return refuse("Workspace.models", MODELS)

    @property
    def compute_targets(self) -> Any:
        return refuse("Workspace.compute_targets", SUBMIT)

    def get_run(self, run_id: str) -> Any:
        return refuse("Workspace.get_run()", SUBMIT)


class _FactoryRefusing:
    def __init__(self, owner: str) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return refuse("%s.%s()" % (self._owner, name), DATA)

        return call


class Dataset:
    """v1 datasets live in the service; inside a run, data comes as a path."""

    File = _FactoryRefusing("Dataset.File")
    Tabular = _FactoryRefusing("Dataset.Tabular")

    @staticmethod
    def get_by_name(*args: Any, **kwargs: Any) -> Any:
        return refuse("Dataset.get_by_name()", DATA)

    @staticmethod
    def get_by_id(*args: Any, **kwargs: Any) -> Any:
        return refuse("Dataset.get_by_id()", DATA)

    @staticmethod
    def get_all(*args: Any, **kwargs: Any) -> Any:
        return refuse("Dataset.get_all()", DATA)


class Datastore:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        refuse("Datastore()", DATA)

    @staticmethod
    def get(*args: Any, **kwargs: Any) -> Any:
        return refuse("Datastore.get()", DATA)

    @staticmethod
    def get_default(*args: Any, **kwargs: Any) -> Any:
        return refuse("Datastore.get_default()", DATA)

    @staticmethod
    def register_azure_blob_container(*args: Any, **kwargs: Any) -> Any:
        return refuse(
            "Datastore.register_azure_blob_container()",
            "register datastores on the client with `targets datastores add`",
        )


class Model:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        refuse("Model()", MODELS)

    @staticmethod
    def register(*args: Any, **kwargs: Any) -> Any:
        return refuse("Model.register()", MODELS)

    @staticmethod
    def get_model_path(*args: Any, **kwargs: Any) -> Any:
        return refuse("Model.get_model_path()", "pass the model's path to the run as an input")

    @staticmethod
    def list(*args: Any, **kwargs: Any) -> Any:
        return refuse("Model.list()", MODELS)


class Experiment:
    """The run's experiment: its name, its workspace; submitting is the client's job."""

    def __init__(self, workspace: Optional[Workspace] = None, name: str = "", **_: Any) -> None:
        self.workspace = workspace if workspace is not None else Workspace()
        self.name = name

    def __repr__(self) -> str:
        return "Experiment(name=%r)" % self.name

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Experiment.submit()", SUBMIT)

    def start_logging(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Experiment.start_logging()", "use Run.get_context() inside the run")
