"""The one error tree. Every error a user can act on is a LoptError whose message says what to change; each
front end (CLI, app, API) catches LoptError once and shows the message, and nothing re-wraps one.

    LoptError
    ├── ConfigError      a run or sweep configuration that cannot be queued
    │   ├── SweepError
    │   ├── RayBackendError
    │   └── HostingError  a host's rule: a bad LOPT_* value, a cap, another visitor's job
    │       ├── NotYours
    │       └── QueueFull
    ├── TaskError        a task or data file that cannot be used
    │   └── LabelWordsError
    ├── ModelUnavailable a model that cannot be loaded here
    ├── EngineError      a model/task pair the engine cannot score
    │   └── HeadMismatch
    ├── NotFound         a run, sweep or analysis that does not exist (or is not the visitor's to see)
    ├── HomeError        LOPT_HOME cannot be used
    │   └── StoreError   its runs.sqlite is damaged, not sqlite, or read-only
    ├── ArtifactMismatch a saved run that does not rebuild to what it trained
    └── AnalysisError    a run that a view cannot analyse
        ├── ExportError
        └── GenerateError

Each class also derives from the builtin its callers have always caught (ValueError, KeyError, RuntimeError).
This module imports nothing of lopt_core.
"""
from __future__ import annotations


class LoptError(Exception):
    """Base of every error whose message a user can act on."""


class ConfigError(LoptError, ValueError):
    """A run configuration that cannot be trained; the message says what to change."""


class SweepError(ConfigError):
    """A sweep that cannot be queued; the message names the offending value."""


class RayBackendError(ConfigError):
    """The Ray backend cannot run: ray is missing, the cluster cannot be reached, or it lacks what runs ask for."""


class HostingError(ConfigError):
    """A host's rule refuses the request: a bad LOPT_* value (named), a size cap, another visitor's job."""


class NotYours(HostingError):
    """A visitor asked to change a run or sweep that another visitor owns."""


class QueueFull(HostingError):
    """A host's cap on unfinished jobs (per visitor or in all) was reached."""


class TaskError(LoptError, ValueError):
    """A task or data file that cannot be used; the message names the problem."""


class LabelWordsError(TaskError):
    """Label words the run's tokenizer cannot score; the message names the words and their first tokens."""


class ModelUnavailable(LoptError, RuntimeError):
    """A model that cannot be loaded here; the message lists what can."""


class EngineError(LoptError, ValueError):
    """A model/task combination the engine cannot score; the message says why."""


class HeadMismatch(EngineError):
    """The model's output head does something label-word scoring does not reproduce."""


class NotFound(LoptError, KeyError):
    """A run, sweep or analysis that does not exist."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


RunNotFound = NotFound  # the name the store has always raised


class HomeError(LoptError, RuntimeError):
    """LOPT_HOME cannot be used; the message is one line naming LOPT_HOME, the folder and the problem."""


class StoreError(HomeError):
    """The store file cannot be used; the message names the file and what to do."""


class ArtifactMismatch(LoptError, ValueError):
    """A saved run whose rebuilt prompt is not the prompt it was trained to."""


class AnalysisError(LoptError, ValueError):
    """A run that this view cannot analyse, with the reason in words."""


class ExportError(AnalysisError):
    """A run that cannot be exported as a PEFT prompt-tuning adapter; the message says why."""


class GenerateError(AnalysisError):
    """A side-by-side request that cannot run; the message says what to change."""
