"""Structure: the files the template owns are there, fully rendered, parse,
and hubploy.yaml is what hubploy reads."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..copier_settings import ANSWERS_FILE
from ..helm_values import Problem
from .base import Skip, Structure, code, report
from .hub import Hub, conflict_problem
from .template_files import TemplateFiles, template_files

if TYPE_CHECKING:
    from jsonschema import ValidationError

# Jinja syntax copier would have rendered: an expression, or a statement tag.
JINJA = re.compile(
    r"\{\{-?\s*[A-Za-z_][^{}\n]*\}\}"
    r"|\{%-?\s*(?:if|elif|else|endif|for|endfor|set|from|import|include|macro|endmacro|raw|endraw)\b[^\n]*?%\}"
    r"|\{#.*?#\}"
)
HUBPLOY_SCHEMA = Path(__file__).with_name("hubploy.schema.json")


def _template_files(hub: Hub) -> TemplateFiles | None:
    if not hub.answers:
        return None
    try:
        return template_files(hub.answers)
    except FileNotFoundError:
        return None


class ST001(Structure):
    "Every file the template owns is present"

    def run(self, hub: Hub) -> str | Skip:
        if not hub.answers:
            return self.skip(f"{ANSWERS_FILE} is missing or unreadable, so the template's files are unknown")
        expected = _template_files(hub)
        if expected is None:
            return self.skip(
                "the template is not installed beside the checker (install hub-template from its wheel or a checkout)"
            )
        rendered_from = hub.answers.get("_commit", "an unknown version")
        fix = (
            f"Restore it from git, or run `copier update --trust --defaults` in the hub's folder "
            f"(this checker is hub-template {expected.version}; the hub was rendered from {rendered_from})."
        )
        return report(
            Problem(rel, None, f"is missing. {fix}") for rel in expected.owned if not (hub.folder / rel).is_file()
        )


class ST002(Structure):
    "No unrendered Jinja is left in the template's files"

    def run(self, hub: Hub) -> str:
        problems = [
            Problem(
                rel,
                None,
                "is a template file copier should have rendered; "
                "render the hub again with `copier copy` or `copier update`.",
            )
            for rel in hub.files
            if rel.endswith(".jinja") or "{{" in rel or "{%" in rel
        ]
        expected = _template_files(hub)
        owned = expected.owned if expected else [rel for rel in hub.files if not rel.startswith("secrets/")]
        # An answer may itself hold braces (a hub_description "{{ x }}"): copier renders it as text.
        answered = [str(v) for v in hub.answers.values() if isinstance(v, str) and ("{" in v)]
        for rel in owned:
            text = hub.text(rel)
            for number, line in enumerate((text or "").splitlines(), 1):
                match = next(
                    (m for m in JINJA.finditer(line) if not any(m.group(0) in answer for answer in answered)), None
                )
                if match:
                    problems.append(
                        Problem(
                            rel,
                            number,
                            f"holds unrendered Jinja {code(match.group(0))}; replace it with the value it stands for.",
                        )
                    )
        return report(problems)


class ST003(Structure):
    "Every YAML file parses, and no file holds an update's conflict markers"

    def run(self, hub: Hub) -> str:
        problems = []
        for rel in hub.files:
            if rel.endswith((".yaml", ".yml")) and hub.encryption(rel) != "git-crypt":
                problem = (hub.yaml(rel) if hub.single_document(rel) else hub.yaml_stream(rel)).problem
                if problem:
                    fix = " Fix the syntax there." if problem.message.startswith("is not valid YAML") else ""
                    problems.append(Problem(problem.file, problem.line, problem.message + fix))
            elif (markers := hub.conflict_markers(rel)) is not None:  # scripts, README.md, notebooks...
                problems.append(conflict_problem(rel, markers))
            elif rel.endswith(".rej"):
                problems.append(
                    Problem(
                        rel,
                        None,
                        f"is a change an update could not place (`copier update --conflict rej`): apply it "
                        f"to {code(rel.removesuffix('.rej'))} by hand, then delete it.",
                    )
                )
        return report(problems)


class ST004(Structure):
    "hubploy.yaml matches hubploy's schema for its provider"

    def run(self, hub: Hub) -> str | Skip:
        import jsonschema

        parsed = hub.yaml("hubploy.yaml")
        if parsed.problem:
            return self.skip("hubploy.yaml does not parse (ST003)")
        if parsed.data is None:
            return report([Problem("hubploy.yaml", None, "is missing or empty; hubploy needs it to deploy the hub.")])
        located = hub.values_file("hubploy.yaml")
        validator = jsonschema.Draft7Validator(json.loads(HUBPLOY_SCHEMA.read_text()))
        problems = []
        for error in sorted(validator.iter_errors(parsed.data), key=lambda e: list(e.absolute_path)):
            keys = [str(k) for k in error.absolute_path]
            where = ".".join(keys) or "(top level)"
            line = located.line_of(keys) if located and keys else None
            problems.append(Problem("hubploy.yaml", line, f"{code(where)}: {_hubploy_message(error)}"))
        return report(problems)


def _hubploy_message(error: ValidationError) -> str:
    # additionalProperties and oneOf of hubploy's schema hold for mappings, with a list of options
    if (
        error.validator == "additionalProperties"
        and not error.absolute_path
        and isinstance(error.instance, Mapping)
        and "images" in error.instance
    ):
        return (
            "`images` is hubploy 0.4's: today's hubploy builds no image and reads only `cluster:`; "
            "run `copier update --trust` (1.2.0 renders it again)."
        )
    if error.validator == "additionalProperties":
        return f"{error.message}; hubploy passes these settings as keyword arguments and rejects unknown ones."
    if error.validator == "oneOf" and isinstance(error.instance, dict) and isinstance(error.validator_value, list):
        options = [next(iter(s["required"])) for s in error.validator_value if "required" in s]
        return f"give exactly one of {', '.join(map(code, options))}."
    if error.validator == "required":
        return (
            f"{error.message}; hubploy passes these settings as keyword arguments to its login "
            "for this provider, so it needs every one."
        )
    description = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    return f"{error.message}." + (f" {description}" if description else "")


class ST005(Structure):
    "hubploy.yaml logs in to the hub's cloud, and names only key files that exist"

    def run(self, hub: Hub) -> str | Skip:
        config = hub.yaml("hubploy.yaml").data
        if not isinstance(config, dict):
            return self.skip("hubploy.yaml is missing or does not parse (ST003, ST004)")
        located = hub.values_file("hubploy.yaml")
        problems: list[Problem] = []
        expected = hub.cloud["hubploy"] if hub.cloud else None
        block = config.get("cluster")
        if not isinstance(block, dict):
            return report(problems)
        provider = block.get("provider")
        if expected and provider != expected:
            problems.append(
                Problem(
                    "hubploy.yaml",
                    located.line_of(["cluster", "provider"]) if located else None,
                    f"{code('cluster.provider')} is {code(provider)}, but the hub's cloud_provider "
                    f"{code(hub.answers.get('cloud_provider'))} is {code(expected)} in hubploy; "
                    "change the answer with `copier update --trust --data cloud_provider=...` rather than this file.",
                )
            )
        settings = block.get(provider)
        # A kubeconfig is written by CI after its OIDC login; key files are read from the repository.
        for field in ("service_key", "auth_file"):
            name = settings.get(field) if isinstance(settings, dict) else None
            if isinstance(name, str) and not (hub.folder / "secrets" / name).is_file():
                problems.append(
                    Problem(
                        "hubploy.yaml",
                        located.line_of(["cluster", str(provider), field]) if located else None,
                        f"{code(field)} names {code('secrets/' + name)}, which does not exist; hubploy reads "
                        "its credentials from there.",
                    )
                )
        return report(problems)


# The folders tools read (repo2docker, helm, hubploy, sops): a link there makes
# them read, and print, whatever it points to on the machine running them.
NO_LINKS = ("image/", "config/", "secrets/")


class ST007(Structure):
    "image/, config/ and secrets/ hold no symlink"

    def run(self, hub: Hub) -> str:
        return report(
            Problem(
                rel,
                None,
                "is a symlink: repo2docker, helm and hubploy would read whatever it points to on the machine "
                "that runs them (in CI, the unlocked secrets), and print it in their errors. The checker reads "
                "neither the link nor its target; replace the link with the file itself.",
            )
            for rel in hub.links
            if rel.startswith(NO_LINKS)
        )


CHECKS = (ST001, ST002, ST003, ST004, ST005, ST007)
