import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  showDialog,
  showErrorMessage,
  ToolbarButton
} from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import {
  INotebookModel,
  INotebookTracker,
  NotebookPanel
} from '@jupyterlab/notebook';
import { PageConfig, PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { Contents } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import {
  getConfig,
  getDefaults,
  getTypes,
  IDatasetType,
  ISaveDefaults,
  ISaveRequest,
  OpenBISRequestError,
  saveToOpenBIS,
  search,
  serverHash
} from './api';
import { resultBody, SaveForm } from './dialog';
import { enableDrop, OpenBISPanel } from './panel';

const PLUGIN_ID = 'openbis-hub:plugin';
const COMMAND = 'openbis-hub:save-to-openbis';

/** The files beside the notebook that may go into the dataset too. */
async function filesBeside(contents: Contents.IManager, path: string): Promise<string[]> {
  const folder = PathExt.dirname(path);
  try {
    const listing = await contents.get(folder, { content: true });
    return (listing.content as Contents.IModel[])
      .filter(m => m.type !== 'directory' && m.path !== path && !m.name.startsWith('.'))
      .map(m => m.path)
      .sort();
  } catch {
    return [];
  }
}

/** Indices of the cells edited since they last ran. */
function editedCells(panel: NotebookPanel): number[] {
  const out: number[] = [];
  const cells = panel.content.model?.cells;
  for (let i = 0; cells && i < cells.length; i++) {
    const cell = cells.get(i) as any;
    if (cell.type === 'code' && cell.isDirty) {
      out.push(i);
    }
  }
  return out;
}

/** Save the notebook, ask for the dataset's metadata, register it in openBIS. */
async function saveNotebookToOpenBIS(app: JupyterFrontEnd, panel: NotebookPanel): Promise<void> {
  await panel.context.ready;
  try {
    await panel.context.save();
  } catch (error) {
    await showErrorMessage('Save to openBIS', `Could not save the notebook: ${error}`);
    return;
  }
  const path = panel.context.path;
  let defaults: ISaveDefaults;
  let types: IDatasetType[] = [];
  try {
    defaults = await getDefaults(path);
  } catch (error) {
    await showErrorMessage('Save to openBIS', (error as Error).message);
    return;
  }
  try {
    types = (await getTypes()).types;
  } catch (error) {
    if (!defaults.error) {
      defaults = { ...defaults, error: { status: 0, message: (error as Error).message } };
    }
  }
  const workspaceFiles = await filesBeside(app.serviceManager.contents, path);
  let previous: ISaveRequest | undefined;
  let problems: Record<string, string> | undefined;
  for (;;) {
    const form: SaveForm = new SaveForm({
      defaults,
      types,
      workspaceFiles,
      previous,
      problems,
      searchOwners: async q => (await search(q, 'collection,object')).hits
    });
    const result: Dialog.IResult<ISaveRequest> = await showDialog({
      title: 'Save to openBIS',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const request: ISaveRequest = result.value;
    previous = request;
    problems = form.problems();
    if (Object.keys(problems).length) {
      await showErrorMessage(
        'Not saved to openBIS',
        'Correct these first (nothing was registered): ' +
          Object.entries(problems)
            .map(([code, why]) => `${code} ${why}`)
            .join('; ')
      );
      continue;
    }
    try {
      // the history id lives in the notebook, so the next save is a new version of the same notebook
      const model = panel.content.model;
      const openbis = { ...((model?.getMetadata('openbis') as Record<string, any>) || {}) };
      if (model && request.history_id && openbis.history_id !== request.history_id) {
        openbis.history_id = request.history_id;
        model.setMetadata('openbis', openbis);
      }
      request.edited_cells = editedCells(panel);
      if (panel.context.model.dirty) {
        await panel.context.save();
      }
      const saved = await saveToOpenBIS(request);
      await showDialog({
        title: 'Saved to openBIS',
        body: resultBody(saved.permId, saved.link, saved.files),
        buttons: [Dialog.okButton({ label: 'Close' })]
      });
      return;
    } catch (error) {
      const status = error instanceof OpenBISRequestError ? error.status : 0;
      const body = error instanceof OpenBISRequestError ? error.body : {};
      await showErrorMessage('Save to openBIS failed', (error as Error).message);
      if (status !== 400) {
        return;
      }
      // let the user correct what openBIS refused, keeping what was typed
      problems = {};
      for (const code of (body.missing as string[]) || []) {
        problems[code] = 'is mandatory';
      }
      Object.assign(problems, (body.invalid as Record<string, string>) || {});
    }
  }
}

class SaveButtonExtension
  implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel>
{
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'jp-OpenBISSave-button',
      label: 'openBIS',
      tooltip: 'Save to openBIS',
      onClick: () => {
        void this.app.commands.execute(COMMAND);
      }
    });
    panel.toolbar.insertItem(10, 'openbisSave', button);
    return button;
  }
}

/** The hash of a file as saved: the contents model's, else the server's SHA-256. */
async function savedHash(
  contents: Contents.IManager,
  path: string
): Promise<string> {
  try {
    const model = await contents.get(path, { content: false, hash: true } as any);
    if (model.hash) {
      return model.hash;
    }
  } catch {
    // fall through to the extension's endpoint
  }
  return serverHash(path);
}

/**
 * Let an allowed parent page (the openBIS ELN) save a framed notebook:
 * `{"type": "openbis-hub:save"[, "path": ...]}` → `{"type": "openbis-hub:saved", path, hash}`.
 */
async function startBridge(
  app: JupyterFrontEnd,
  tracker: INotebookTracker
): Promise<void> {
  if (window.parent === window) {
    return;
  }
  let allowed: Set<string>;
  try {
    const config = await getConfig();
    allowed = new Set(
      (config.frame_ancestors || []).map(origin => origin.replace(/\/+$/, ''))
    );
  } catch (error) {
    console.warn('openbis-hub: no postMessage bridge', error);
    return;
  }
  window.addEventListener('message', event => {
    if (event.source !== window.parent || !allowed.has(event.origin)) {
      return;
    }
    const data = event.data;
    if (!data || typeof data !== 'object' || data.type !== 'openbis-hub:save') {
      return;
    }
    const reply = (message: Record<string, unknown>) =>
      window.parent.postMessage(
        { ...message, ...(data.id !== undefined ? { id: data.id } : {}) },
        event.origin
      );
    let panel: NotebookPanel | null = tracker.currentWidget;
    if (typeof data.path === 'string') {
      panel = tracker.find(p => p.context.path === data.path) ?? null;
    }
    if (!panel) {
      reply({ type: 'openbis-hub:error', message: 'No notebook is open.' });
      return;
    }
    const target = panel;
    void (async () => {
      try {
        await target.context.ready;
        await target.context.save();
        const path = target.context.path;
        const hash = await savedHash(app.serviceManager.contents, path);
        reply({ type: 'openbis-hub:saved', path, hash });
      } catch (error) {
        reply({
          type: 'openbis-hub:error',
          path: target.context.path,
          message: `Could not save: ${(error as Error).message ?? error}`
        });
      }
    })();
  });
  for (const origin of allowed) {
    window.parent.postMessage({ type: 'openbis-hub:ready' }, origin);
  }
}

/**
 * The openBIS side panel: in JupyterLab's left sidebar; in Notebook 7 a tab of the
 * tree view (beside Files and Running) and the left sidebar of the notebook page.
 */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'openbis-hub:panel',
  description: 'Browse openBIS, download datasets, insert their code, open stored notebooks.',
  autoStart: true,
  optional: [INotebookTracker, IDefaultFileBrowser, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    browser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null
  ) => {
    const currentFolder = () => {
      const notebook = tracker?.currentWidget;
      if (notebook) {
        return PathExt.dirname(notebook.context.path);
      }
      return browser?.model.path ?? '';
    };
    const showFolder = async (path: string) => {
      if (browser) {
        await browser.model.cd('/' + path);
        await browser.model.refresh();
      }
    };
    const panel = new OpenBISPanel(app, tracker, currentFolder, showFolder);
    if (PageConfig.getOption('notebookPage') === 'tree') {
      // Notebook 7's tree view is a tab panel (Files, Running): the panel becomes one of its tabs
      void app.restored.then(() => {
        const main = Array.from(app.shell.widgets('main'))[0] as any;
        panel.title.label = 'openBIS';
        if (main && typeof main.addWidget === 'function') {
          main.addWidget(panel);
        } else {
          app.shell.add(panel, 'left', { rank: 600 });
        }
      });
    } else {
      app.shell.add(panel, 'left', { rank: 600 });
      restorer?.add(panel, 'openbis-hub-panel');
    }
    app.commands.addCommand('openbis-hub:show-panel', {
      label: 'Show the openBIS panel',
      execute: () => app.shell.activateById(panel.id)
    });
    if (tracker) {
      enableDrop(tracker);
    }
  }
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Save notebooks to openBIS; lets the openBIS ELN save a framed notebook.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const isEnabled = () => tracker.currentWidget !== null;
    app.commands.addCommand(COMMAND, {
      label: 'Save to openBIS',
      caption: 'Save the notebook and register it (with an HTML copy) as an openBIS dataset',
      isEnabled,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await saveNotebookToOpenBIS(app, panel);
        }
      }
    });
    palette?.addItem({ command: COMMAND, category: 'openBIS' });
    app.docRegistry.addWidgetExtension('Notebook', new SaveButtonExtension(app));
    void startBridge(app, tracker);
  }
};

export default [plugin, panelPlugin];
