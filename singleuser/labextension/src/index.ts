import {
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
import { Contents } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import {
  getConfig,
  getDefaults,
  ISaveDefaults,
  ISaveRequest,
  OpenBISRequestError,
  saveToOpenBIS,
  serverHash
} from './api';
import { resultBody, SaveForm } from './dialog';

const PLUGIN_ID = 'openbis-hub:plugin';
const COMMAND = 'openbis-hub:save-to-openbis';

/** Save the notebook, ask for the dataset's metadata, register it in openBIS. */
async function saveNotebookToOpenBIS(panel: NotebookPanel): Promise<void> {
  await panel.context.ready;
  try {
    await panel.context.save();
  } catch (error) {
    await showErrorMessage('Save to openBIS', `Could not save the notebook: ${error}`);
    return;
  }
  const path = panel.context.path;
  let defaults: ISaveDefaults;
  try {
    defaults = await getDefaults(path);
  } catch (error) {
    await showErrorMessage('Save to openBIS', (error as Error).message);
    return;
  }
  for (;;) {
    const form: SaveForm = new SaveForm(defaults);
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
    try {
      const saved = await saveToOpenBIS(request);
      await showDialog({
        title: 'Saved to openBIS',
        body: resultBody(saved.permId, saved.link),
        buttons: [Dialog.okButton({ label: 'Close' })]
      });
      return;
    } catch (error) {
      const status = error instanceof OpenBISRequestError ? error.status : 0;
      await showErrorMessage('Save to openBIS failed', (error as Error).message);
      if (status !== 400) {
        return;
      }
      // let the user correct what openBIS refused, keeping what was typed
      defaults = {
        ...defaults,
        type: request.type ?? defaults.type,
        owner: request.owner ?? null,
        parents: request.parents ?? [],
        name: request.name ?? '',
        notes: request.notes ?? '',
        history_id: request.history_id ?? ''
      };
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
          await saveNotebookToOpenBIS(panel);
        }
      }
    });
    palette?.addItem({ command: COMMAND, category: 'openBIS' });
    app.docRegistry.addWidgetExtension('Notebook', new SaveButtonExtension(app));
    void startBridge(app, tracker);
  }
};

export default plugin;
