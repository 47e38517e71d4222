"""MkDocs hook: regenerate the reference pages from the code before each build."""

import importlib.util
from pathlib import Path


def on_pre_build(config, **kwargs):
    path = Path(__file__).with_name("gen_config_reference.py")
    spec = importlib.util.spec_from_file_location("gen_config_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate()  # writes only pages whose text changed, so `mkdocs serve` does not loop


# Pages other parts of the project write. Until a page exists, the build gets a
# short stand-in page so nav and links stay valid under --strict.
PENDING = {
    "deploy.md": (
        "Deployment",
        "The deployment guide (docker compose) is being written; see "
        "`docker-compose.yml` and `.env.example` in the repository meanwhile.",
    ),
    "notebook.md": (
        "Working in your notebook",
        "This page is being written; the [tutorial](tutorial.md) shows the notebook side of the story.",
    ),
}


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for src, (title, text) in PENDING.items():
        if files.get_file_from_path(src) is None:
            files.append(File.generated(config, src, content=f"# {title}\n\n{text}\n"))
    return files
