import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { NotebookActions, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  getChildren,
  getDownload,
  getEntity,
  getFiles,
  getSession,
  IDatasetFile,
  IDownload,
  INode,
  NodeKind,
  openFromDataset,
  search,
  startDownload
} from './api';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><circle cx="12" cy="12" r="3.2"/><circle cx="4.5" cy="6" r="2.2"/>
<circle cx="19.5" cy="6" r="2.2"/><circle cx="4.5" cy="18" r="2.2"/><circle cx="19.5" cy="18" r="2.2"/>
<path d="M6.3 7.1l3.4 2.7M17.7 7.1l-3.4 2.7M6.3 16.9l3.4-2.7M17.7 16.9l-3.4-2.7" stroke="#616161" stroke-width="1.4"/></g></svg>`;

export const openbisIcon = new LabIcon({ name: 'openbis-hub:openbis', svgstr: ICON_SVG });

/** The mime type a dragged dataset carries (its permId). */
export const DATASET_MIME = 'application/x-openbis-dataset';

const CHILD_KIND: Record<string, string> = {
  space: 'projects',
  project: 'collections',
  collection: 'objects and datasets',
  object: 'datasets'
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

/** The cell "Insert code" puts into a notebook. */
export function datasetCode(permId: string, withConnection: boolean): string {
  const lines = withConnection ? ['from pybis import Openbis', 'o = Openbis()'] : [];
  lines.push(`ds = o.get_dataset('${permId}')`, 'ds');
  return lines.join('\n');
}

function notebookHasConnection(panel: NotebookPanel): boolean {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return false;
  }
  for (let i = 0; i < cells.length; i++) {
    if (cells.get(i).sharedModel.getSource().includes('Openbis(')) {
      return true;
    }
  }
  return false;
}

/** Insert `ds = o.get_dataset(...)` below the active cell of a notebook. */
export function insertDatasetCode(panel: NotebookPanel, permId: string): void {
  const notebook = panel.content;
  const code = datasetCode(permId, !notebookHasConnection(panel));
  NotebookActions.insertBelow(notebook);
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(code);
  }
}

/** Record a download in the notebook's metadata: `openbis.datasets[permId] = {permId, path, files}`. */
export function recordDownload(panel: NotebookPanel, download: IDownload): void {
  const model = panel.content.model;
  if (!model) {
    return;
  }
  const openbis = { ...((model.getMetadata('openbis') as Record<string, any>) || {}) };
  const datasets = { ...(openbis.datasets || {}) };
  for (const d of download.datasets) {
    datasets[d.permId] = { permId: d.permId, path: d.path, files: d.files };
  }
  openbis.datasets = datasets;
  model.setMetadata('openbis', openbis);
}

class DownloadForm extends Widget {
  readonly folder: HTMLInputElement;
  private _boxes: HTMLInputElement[] = [];

  constructor(node: INode, files: IDatasetFile[], folder: string) {
    super();
    this.addClass('jp-OpenBISSave-form');
    this.addClass('jp-OpenBISDownload-form');
    const label = el('label');
    label.append(el('span', '', 'Folder (in your notebook directory)'));
    this.folder = el('input');
    this.folder.value = folder;
    label.append(this.folder);
    this.node.append(label);
    const list = el('div', 'jp-OpenBISDownload-files');
    list.append(el('span', '', `Files of ${node.permId}`));
    for (const f of files.filter(f => !f.directory)) {
      const row = el('label', 'jp-OpenBISDownload-file');
      const box = el('input');
      box.type = 'checkbox';
      box.checked = true;
      box.value = f.path;
      this._boxes.push(box);
      row.append(box, `${f.path} (${formatBytes(f.size)})`);
      list.append(row);
    }
    this.node.append(list);
  }

  getValue(): { folder: string; files: string[]; all: boolean } {
    const files = this._boxes.filter(b => b.checked).map(b => b.value);
    return { folder: this.folder.value.trim(), files, all: files.length === this._boxes.length };
  }
}

class OpenForm extends Widget {
  readonly folder: HTMLInputElement;
  readonly keep: HTMLInputElement;
  readonly file: HTMLSelectElement;

  constructor(notebooks: IDatasetFile[], folder: string) {
    super();
    this.addClass('jp-OpenBISSave-form');
    this.file = el('select');
    for (const f of notebooks) {
      const option = el('option', '', f.path);
      option.value = f.path;
      this.file.append(option);
    }
    const fileLabel = el('label');
    fileLabel.append(el('span', '', 'Notebook'), this.file);
    this.folder = el('input');
    this.folder.value = folder;
    const folderLabel = el('label');
    folderLabel.append(el('span', '', 'Folder'), this.folder);
    this.keep = el('input');
    this.keep.type = 'checkbox';
    const keepLabel = el('label', 'jp-OpenBISOpen-keep');
    keepLabel.append(this.keep, 'Keep history: this notebook continues the old one');
    this.node.append(fileLabel, folderLabel, keepLabel);
  }
}

/** The openBIS side panel: session state, search, a lazy tree, details and dataset actions. */
export class OpenBISPanel extends Widget {
  private _session = el('div', 'jp-OpenBISPanel-session', 'Checking the openBIS session…');
  private _search = el('input', 'jp-OpenBISPanel-search');
  private _results = el('div', 'jp-OpenBISPanel-results');
  private _tree = el('div', 'jp-OpenBISPanel-tree');
  private _details = el('div', 'jp-OpenBISPanel-details');
  private _progress = el('div', 'jp-OpenBISPanel-progress');
  private _timer: number | undefined;
  private _selected = new Map<string, INode>();
  private _downloadSelected = el('button', 'jp-mod-styled jp-OpenBISPanel-download-selected');

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly tracker: INotebookTracker | null,
    private readonly currentFolder: () => string,
    private readonly showFolder: (path: string) => Promise<void> = async () => undefined
  ) {
    super();
    this.id = 'openbis-hub-panel';
    this.addClass('jp-OpenBISPanel');
    this.title.icon = openbisIcon;
    this.title.caption = 'openBIS';
    const header = el('div', 'jp-OpenBISPanel-header');
    header.append(el('h2', '', 'openBIS'), this._session);
    this._search.type = 'search';
    this._search.placeholder = 'Search code, name or permId…';
    this._search.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this.runSearch(this._search.value);
      }
    });
    this._downloadSelected.hidden = true;
    this._downloadSelected.addEventListener('click', () => void this.downloadSelected());
    this.node.append(
      header,
      this._search,
      this._downloadSelected,
      this._results,
      this._progress,
      this._tree,
      this._details
    );
  }

  protected onAfterAttach(): void {
    void this.refreshSession();
    if (!this._tree.childElementCount) {
      void this.loadChildren(this._tree, 'root', undefined, 0);
    }
    this._timer = window.setInterval(() => void this.refreshSession(), 60_000);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._timer);
  }

  async refreshSession(): Promise<void> {
    try {
      const s = await getSession();
      const renewed = s.renewed_at ? new Date(s.renewed_at * 1000).toLocaleTimeString() : 'never';
      this._session.dataset.valid = String(s.valid);
      this._session.textContent = s.valid
        ? `${s.openbis_user ?? s.user}: session valid (${s.personal_access_token ? 'personal access token' : 'session token'}), renewed ${renewed}; renewed from the hub every ${Math.round(s.refresh_interval)} s`
        : s.message || 'No valid openBIS session.';
    } catch (error) {
      this._session.dataset.valid = 'false';
      this._session.textContent = (error as Error).message;
    }
  }

  private label(node: INode): string {
    // a dataset's code is its long permId: its name says more (the permId is in the tooltip)
    if (node.kind === 'dataset') {
      return node.name || node.code;
    }
    return node.name && node.name !== node.code ? `${node.code} (${node.name})` : node.code;
  }

  private row(node: INode): HTMLElement {
    const item = el('div', 'jp-OpenBISPanel-node');
    item.dataset.kind = node.kind;
    item.dataset.permId = node.permId;
    const line = el('div', 'jp-OpenBISPanel-line');
    const toggle = el('span', 'jp-OpenBISPanel-toggle', '▸');
    if (node.kind === 'dataset') {
      const box = el('input', 'jp-OpenBISPanel-select');
      box.type = 'checkbox';
      box.title = 'Select for downloading several datasets at once';
      box.checked = this._selected.has(node.permId);
      box.addEventListener('change', () => {
        if (box.checked) {
          this._selected.set(node.permId, node);
        } else {
          this._selected.delete(node.permId);
        }
        this.node
          .querySelectorAll<HTMLInputElement>(`.jp-OpenBISPanel-node[data-perm-id="${node.permId}"] > .jp-OpenBISPanel-line > .jp-OpenBISPanel-select`)
          .forEach(other => (other.checked = box.checked));
        const n = this._selected.size;
        this._downloadSelected.hidden = n === 0;
        this._downloadSelected.textContent = `Download ${n} selected dataset${n === 1 ? '' : 's'}…`;
      });
      line.append(box);
    }
    const badge = el('span', 'jp-OpenBISPanel-kind', node.kind);
    const text = el('span', 'jp-OpenBISPanel-label', this.label(node));
    text.title = [node.identifier || node.permId, node.permId, node.type]
      .filter((v, i, all) => v && all.indexOf(v) === i)
      .join(' · ');
    const type = el('span', 'jp-OpenBISPanel-type', node.type || '');
    line.append(toggle, badge, text, type);
    item.append(line);
    const children = el('div', 'jp-OpenBISPanel-children');
    children.hidden = true;
    item.append(children);
    toggle.addEventListener('click', () => void this.toggle(node, children, toggle));
    text.addEventListener('click', () => void this.showDetails(node));
    if (node.kind === 'dataset') {
      item.draggable = true;
      item.addEventListener('dragstart', event => {
        event.dataTransfer?.setData(DATASET_MIME, node.permId);
        event.dataTransfer?.setData('text/plain', `ds = o.get_dataset('${node.permId}')`);
      });
    }
    return item;
  }

  private async toggle(node: INode, children: HTMLElement, toggle: HTMLElement): Promise<void> {
    if (!children.hidden) {
      children.hidden = true;
      toggle.textContent = '▸';
      return;
    }
    children.hidden = false;
    toggle.textContent = '▾';
    if (!children.childElementCount) {
      if (node.kind === 'dataset') {
        await this.loadFiles(node, children);
      } else {
        await this.loadChildren(children, node.kind, node.permId, 0);
      }
    }
  }

  private async loadChildren(
    target: HTMLElement,
    kind: NodeKind | 'root',
    id: string | undefined,
    start: number
  ): Promise<void> {
    const loading = el('div', 'jp-OpenBISPanel-loading', 'Loading…');
    target.append(loading);
    try {
      const page = await getChildren(kind, id, start);
      loading.remove();
      for (const child of page.children) {
        target.append(this.row(child));
      }
      if (!page.children.length && start === 0) {
        target.append(el('div', 'jp-OpenBISPanel-empty', `No ${CHILD_KIND[kind] ?? 'spaces'}.`));
      }
      if (page.start + page.count < page.total) {
        const more = el('button', 'jp-OpenBISPanel-more', `More (${page.total - page.start - page.count} left)`);
        more.addEventListener('click', () => {
          more.remove();
          void this.loadChildren(target, kind, id, page.start + page.count);
        });
        target.append(more);
      }
    } catch (error) {
      loading.remove();
      target.append(el('div', 'jp-OpenBISPanel-error', (error as Error).message));
    }
  }

  private async loadFiles(node: INode, target: HTMLElement): Promise<void> {
    try {
      const files = await getFiles(node.permId);
      for (const f of files.filter(f => !f.directory)) {
        target.append(el('div', 'jp-OpenBISPanel-file', `${f.path} (${formatBytes(f.size)})`));
      }
    } catch (error) {
      target.append(el('div', 'jp-OpenBISPanel-error', (error as Error).message));
    }
  }

  async runSearch(q: string): Promise<void> {
    this._results.replaceChildren();
    if (!q.trim()) {
      return;
    }
    try {
      const answer = await search(q.trim());
      if (!answer.hits.length) {
        this._results.append(el('div', 'jp-OpenBISPanel-empty', `Nothing matches “${q}”.`));
      }
      for (const hit of answer.hits) {
        this._results.append(this.row(hit));
      }
    } catch (error) {
      this._results.append(el('div', 'jp-OpenBISPanel-error', (error as Error).message));
    }
  }

  async showDetails(node: INode): Promise<void> {
    this._details.replaceChildren(el('div', 'jp-OpenBISPanel-loading', 'Loading…'));
    let full: INode = node;
    if (node.kind !== 'space' && node.kind !== 'project') {
      try {
        full = await getEntity(node.kind, node.permId);
      } catch (error) {
        this._details.replaceChildren(el('div', 'jp-OpenBISPanel-error', (error as Error).message));
        return;
      }
    }
    const box = el('div', 'jp-OpenBISPanel-entity');
    box.dataset.permId = full.permId;
    box.append(el('h3', '', `${full.kind} ${full.code}`));
    const table = el('table');
    const rows: [string, unknown][] = [
      ['permId', full.permId],
      ['identifier', full.identifier],
      ['type', full.type],
      ['registrator', full.registrator],
      ...Object.entries(full.properties || {})
    ];
    if (full.size !== undefined && full.size !== null) {
      rows.push(['size', formatBytes(full.size)]);
    }
    for (const [key, value] of rows) {
      if (value === null || value === undefined || value === '') {
        continue;
      }
      const tr = el('tr');
      tr.append(el('th', '', key), el('td', '', String(value)));
      table.append(tr);
    }
    box.append(table);
    for (const [title, list] of [
      ['Parents', full.parents],
      ['Children', full.children]
    ] as [string, INode[] | undefined][]) {
      if (list && list.length) {
        box.append(el('h4', '', title));
        for (const relative of list) {
          box.append(this.row(relative));
        }
      }
    }
    if (full.kind === 'dataset') {
      box.append(this.actions(full));
    }
    this._details.replaceChildren(box);
  }

  private actions(node: INode): HTMLElement {
    const bar = el('div', 'jp-OpenBISPanel-actions');
    const download = el('button', 'jp-mod-styled jp-OpenBISPanel-download', 'Download…');
    download.addEventListener('click', () => void this.download(node));
    const insert = el('button', 'jp-mod-styled jp-OpenBISPanel-insert', 'Insert code');
    insert.addEventListener('click', () => this.insert(node));
    const open = el('button', 'jp-mod-styled jp-OpenBISPanel-open', 'Open notebook…');
    open.addEventListener('click', () => void this.openNotebook(node));
    bar.append(download, insert, open);
    return bar;
  }

  insert(node: INode): void {
    const panel = this.tracker?.currentWidget;
    if (!panel) {
      void showErrorMessage('Insert code', 'Open a notebook first: the code goes into the current notebook.');
      return;
    }
    insertDatasetCode(panel, node.permId);
  }

  async download(node: INode): Promise<void> {
    let files: IDatasetFile[];
    try {
      files = await getFiles(node.permId);
    } catch (error) {
      await showErrorMessage('Download from openBIS', (error as Error).message);
      return;
    }
    const form = new DownloadForm(node, files, this.currentFolder());
    const result = await showDialog({
      title: `Download ${node.permId}`,
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Download' })]
    });
    if (!result.button.accept) {
      return;
    }
    const choice = form.getValue();
    if (!choice.files.length) {
      await showErrorMessage('Download from openBIS', 'Choose at least one file.');
      return;
    }
    await this.runDownload(
      node.permId,
      [{ permId: node.permId, ...(choice.all ? {} : { files: choice.files }) }],
      choice.folder
    );
  }

  /** Download the selected datasets (all their files) into one folder. */
  async downloadSelected(): Promise<void> {
    const selected = Array.from(this._selected.keys());
    if (!selected.length) {
      return;
    }
    const body = new Widget();
    body.addClass('jp-OpenBISSave-form');
    body.addClass('jp-OpenBISDownload-form');
    const label = el('label');
    const folder = el('input');
    folder.value = this.currentFolder();
    label.append(el('span', '', 'Folder (in your notebook directory)'), folder);
    body.node.append(label, el('p', '', `All files of ${selected.join(', ')}`));
    const result = await showDialog({
      title: `Download ${selected.length} datasets`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Download' })]
    });
    if (!result.button.accept) {
      return;
    }
    await this.runDownload(
      selected.join(' '),
      selected.map(permId => ({ permId })),
      folder.value.trim()
    );
  }

  /** Start a download, show its progress, record it in the current notebook when done. */
  private async runDownload(
    label: string,
    datasets: { permId: string; files?: string[] }[],
    folder: string
  ): Promise<void> {
    const notebook = this.tracker?.currentWidget ?? null;
    let job: IDownload;
    try {
      job = await startDownload(datasets, folder);
    } catch (error) {
      await showErrorMessage('Download from openBIS', (error as Error).message);
      return;
    }
    const bar = el('progress');
    bar.max = Math.max(job.bytes_total, 1);
    const text = el('span', 'jp-OpenBISPanel-progress-text');
    const line = el('div', 'jp-OpenBISPanel-job');
    line.dataset.permId = label;
    line.append(bar, text);
    this._progress.append(line);
    for (;;) {
      bar.value = job.bytes_done;
      text.textContent = `${label}: ${formatBytes(job.bytes_done)} of ${formatBytes(job.bytes_total)}`;
      if (job.state !== 'running') {
        break;
      }
      await new Promise(resolve => setTimeout(resolve, 300));
      try {
        job = await getDownload(job.id);
      } catch (error) {
        text.textContent = (error as Error).message;
        return;
      }
    }
    if (job.state === 'error' || !job.datasets.length) {
      line.dataset.state = 'error';
      text.textContent = job.error?.message ?? 'The download failed.';
      await showErrorMessage('Download from openBIS', text.textContent);
      return;
    }
    line.dataset.state = 'done';
    text.textContent = `${label}: ${job.files_done} file(s) in ${job.folder || 'your notebook directory'}`;
    if (notebook) {
      recordDownload(notebook, job);
    }
    // the downloaded datasets' folder in the file browser
    await this.showFolder(job.folder).catch(() => undefined);
  }

  async openNotebook(node: INode): Promise<void> {
    let notebooks: IDatasetFile[];
    try {
      notebooks = (await getFiles(node.permId)).filter(f => f.path.endsWith('.ipynb'));
    } catch (error) {
      await showErrorMessage('Open from openBIS', (error as Error).message);
      return;
    }
    if (!notebooks.length) {
      await showErrorMessage('Open from openBIS', `Dataset ${node.permId} holds no notebook.`);
      return;
    }
    const form = new OpenForm(notebooks, this.currentFolder());
    const result = await showDialog({
      title: 'Open a notebook from openBIS',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Open' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      const opened = await openFromDataset({
        permId: node.permId,
        file: form.file.value,
        folder: form.folder.value.trim(),
        keep_history: form.keep.checked
      });
      await this.app.commands.execute('docmanager:open', { path: opened.path });
    } catch (error) {
      await showErrorMessage('Open from openBIS', (error as Error).message);
    }
  }
}

/** Dropping a dataset of the panel on a notebook inserts its code there. */
export function enableDrop(tracker: INotebookTracker): void {
  tracker.widgetAdded.connect((_, panel) => {
    panel.node.addEventListener('dragover', event => {
      if (event.dataTransfer?.types.includes(DATASET_MIME)) {
        event.preventDefault();
      }
    });
    panel.node.addEventListener(
      'drop',
      event => {
        const permId = event.dataTransfer?.getData(DATASET_MIME);
        if (permId) {
          event.preventDefault();
          event.stopPropagation();
          insertDatasetCode(panel, permId);
        }
      },
      true
    );
  });
}
