import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDatasetType, IPropertyAssignment, ISaveDefaults, ISaveRequest, Owner } from './api';

function field(
  parent: HTMLElement,
  label: string,
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
  mandatory = false
): void {
  const wrapper = document.createElement('label');
  const text = document.createElement('span');
  text.textContent = label;
  if (mandatory) {
    text.className = 'jp-OpenBISSave-mandatory';
  }
  wrapper.append(text, input);
  parent.append(wrapper);
}

function textInput(value: string, placeholder = ''): HTMLInputElement {
  const input = document.createElement('input');
  input.type = 'text';
  input.value = value ?? '';
  input.placeholder = placeholder;
  return input;
}

const FIELD_CODES: Record<'name' | 'notes' | 'history_id', string[]> = {
  name: ['$NAME', 'NAME'],
  notes: ['NOTES', '$NOTES'],
  history_id: ['$HISTORY_ID', 'HISTORY_ID']
};

/** Which property codes of a type hold the name, the notes and the history id. */
export function fieldCodes(properties: IPropertyAssignment[]): Record<string, string | null> {
  const codes = new Set(properties.map(p => p.code.toUpperCase()));
  const out: Record<string, string | null> = {};
  for (const [field, candidates] of Object.entries(FIELD_CODES)) {
    out[field] = candidates.find(c => codes.has(c)) ?? null;
  }
  return out;
}

/** Problems with the values before anything is uploaded: `{code: why}`. */
export function checkValues(
  properties: IPropertyAssignment[],
  values: Record<string, string>
): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const p of properties) {
    const value = (values[p.code] ?? '').trim();
    if (!value) {
      if (p.mandatory) {
        problems[p.code] = 'is mandatory';
      }
      continue;
    }
    if (p.data_type === 'INTEGER' && !/^[+-]?\d+$/.test(value)) {
      problems[p.code] = 'must be a whole number';
    } else if (p.data_type === 'REAL' && (value === '' || isNaN(Number(value)))) {
      problems[p.code] = 'must be a number';
    } else if (p.data_type === 'BOOLEAN' && !['true', 'false'].includes(value.toLowerCase())) {
      problems[p.code] = 'must be true or false';
    } else if (p.data_type === 'DATE' && !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      problems[p.code] = 'must be a date, YYYY-MM-DD';
    } else if (
      p.data_type === 'CONTROLLEDVOCABULARY' &&
      p.terms &&
      !p.terms.some(t => t.code === value.toUpperCase())
    ) {
      problems[p.code] = 'must be one of ' + p.terms.map(t => t.code).join(', ');
    }
  }
  return problems;
}

function propertyInput(
  p: IPropertyAssignment,
  value: string
): HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement {
  if (p.data_type === 'CONTROLLEDVOCABULARY' && p.terms) {
    const select = document.createElement('select');
    select.append(new Option('', ''));
    for (const term of p.terms) {
      select.append(new Option(`${term.label} (${term.code})`, term.code));
    }
    select.value = value;
    return select;
  }
  if (p.data_type === 'BOOLEAN') {
    const select = document.createElement('select');
    for (const option of ['', 'true', 'false']) {
      select.append(new Option(option, option));
    }
    select.value = value;
    return select;
  }
  if (p.data_type === 'MULTILINE_VARCHAR') {
    const area = document.createElement('textarea');
    area.value = value;
    return area;
  }
  const input = textInput(value);
  if (p.data_type === 'DATE') {
    input.type = 'date';
  } else if (p.data_type === 'INTEGER' || p.data_type === 'REAL') {
    input.inputMode = 'decimal';
  }
  return input;
}

export interface ISaveFormOptions {
  defaults: ISaveDefaults;
  types: IDatasetType[];
  /** files beside the notebook that may go into the dataset too */
  workspaceFiles: string[];
  /** what the user typed before (the dialog is shown again after an error) */
  previous?: ISaveRequest;
  problems?: Record<string, string>;
  searchOwners?: (q: string) => Promise<{ kind: string; identifier: string | null; name: string | null }[]>;
}

/** The form of the "Save to openBIS" dialog; its value is the save request. */
export class SaveForm extends Widget implements Dialog.IBodyWidget<ISaveRequest> {
  private _name: HTMLInputElement;
  private _notes: HTMLTextAreaElement;
  private _ownerKind: HTMLSelectElement;
  private _ownerId: HTMLInputElement;
  private _parents: HTMLTextAreaElement;
  private _historyId: HTMLInputElement;
  private _type: HTMLSelectElement | HTMLInputElement;
  private _properties: HTMLElement;
  private _extra = new Map<string, HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>();
  private _files: HTMLInputElement[] = [];
  private _environment: HTMLInputElement;
  private _nameLabel!: HTMLElement;
  private _notesLabel!: HTMLElement;

  constructor(private readonly options: ISaveFormOptions) {
    super();
    const { defaults, previous } = options;
    const form = document.createElement('div');
    form.className = 'jp-OpenBISSave-form';
    this.node.append(form);

    if (defaults.error) {
      const warning = document.createElement('p');
      warning.className = 'jp-OpenBISSave-warning';
      warning.textContent = defaults.error.message;
      form.append(warning);
    }
    if (options.problems && Object.keys(options.problems).length) {
      const warning = document.createElement('p');
      warning.className = 'jp-OpenBISSave-warning jp-OpenBISSave-problems';
      warning.textContent = Object.entries(options.problems)
        .map(([code, why]) => `${code} ${why}`)
        .join('; ');
      form.append(warning);
    }

    if (options.types.length) {
      const select = document.createElement('select');
      for (const t of options.types) {
        select.append(new Option(t.description ? `${t.code}: ${t.description}` : t.code, t.code));
      }
      select.value = previous?.type ?? defaults.type;
      if (!select.value && options.types.length) {
        select.value = options.types[0].code;
      }
      select.addEventListener('change', () => this.buildProperties());
      this._type = select;
    } else {
      this._type = textInput(previous?.type ?? defaults.type);
    }
    this._type.classList.add('jp-OpenBISSave-type');
    field(form, 'Dataset type', this._type);

    this._name = textInput(previous?.name ?? defaults.name);
    this._nameLabel = document.createElement('span');
    field(form, 'Name', this._name);
    this._nameLabel = this._name.previousElementSibling as HTMLElement;

    this._notes = document.createElement('textarea');
    this._notes.value = previous?.notes ?? defaults.notes ?? '';
    field(form, 'Notes', this._notes);
    this._notesLabel = this._notes.previousElementSibling as HTMLElement;

    const owner = document.createElement('div');
    owner.className = 'jp-OpenBISSave-owner';
    this._ownerKind = document.createElement('select');
    for (const [value, label] of [
      ['experiment', 'Experiment / Collection'],
      ['object', 'Object']
    ]) {
      this._ownerKind.append(new Option(label, value));
    }
    const current: Owner | null = previous?.owner ?? defaults.owner;
    this._ownerKind.value = current && 'object' in current ? 'object' : 'experiment';
    this._ownerId = textInput(
      current ? ('object' in current ? current.object : current.experiment) : '',
      '/SPACE/PROJECT/COLLECTION or permId; type to search'
    );
    const list = document.createElement('datalist');
    list.id = `openbis-owners-${Math.random().toString(36).slice(2)}`;
    this._ownerId.setAttribute('list', list.id);
    const kinds = new Map<string, string>();
    let timer: number | undefined;
    this._ownerId.addEventListener('input', () => {
      const value = this._ownerId.value.trim();
      const kind = kinds.get(value);
      if (kind) {
        this._ownerKind.value = kind === 'object' ? 'object' : 'experiment';
        return;
      }
      window.clearTimeout(timer);
      if (value.length < 2 || !options.searchOwners) {
        return;
      }
      timer = window.setTimeout(async () => {
        try {
          const hits = await options.searchOwners!(value);
          list.replaceChildren();
          for (const hit of hits) {
            if (hit.identifier) {
              kinds.set(hit.identifier, hit.kind);
              list.append(new Option(`${hit.kind}${hit.name ? ': ' + hit.name : ''}`, hit.identifier));
            }
          }
        } catch {
          // searching is a help, not a requirement
        }
      }, 250);
    });
    owner.append(this._ownerKind, this._ownerId, list);
    const ownerLabel = document.createElement('label');
    const ownerText = document.createElement('span');
    ownerText.textContent = 'Owner';
    ownerText.className = 'jp-OpenBISSave-mandatory';
    ownerLabel.append(ownerText, owner);
    form.append(ownerLabel);

    this._parents = document.createElement('textarea');
    this._parents.value = (previous?.parents ?? defaults.parents ?? []).join('\n');
    this._parents.placeholder = 'one dataset permId per line';
    this._parents.className = 'jp-OpenBISSave-parents';
    field(form, 'Parent datasets (the template\'s and those downloaded into this notebook)', this._parents);

    this._historyId = textInput(previous?.history_id ?? defaults.history_id);
    field(form, 'History id (same id = new version of the same notebook)', this._historyId);

    this._properties = document.createElement('div');
    this._properties.className = 'jp-OpenBISSave-properties';
    form.append(this._properties);

    if (options.workspaceFiles.length) {
      const files = document.createElement('div');
      files.className = 'jp-OpenBISSave-files';
      files.append(Object.assign(document.createElement('span'), { textContent: 'Also register these files' }));
      const chosen = new Set(previous?.files ?? []);
      for (const path of options.workspaceFiles) {
        const row = document.createElement('label');
        row.className = 'jp-OpenBISSave-file';
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.value = path;
        box.checked = chosen.has(path);
        this._files.push(box);
        row.append(box, path);
        files.append(row);
      }
      form.append(files);
    }

    this._environment = document.createElement('input');
    this._environment.type = 'checkbox';
    this._environment.checked = previous?.environment ?? true;
    const env = document.createElement('label');
    env.className = 'jp-OpenBISSave-environment';
    env.append(
      this._environment,
      "Attach the kernel's environment (requirements.txt, Python version, execution state)"
    );
    form.append(env);
    this.buildProperties();
  }

  private get currentType(): IDatasetType | undefined {
    const code = this._type.value.trim().toUpperCase();
    return this.options.types.find(t => t.code.toUpperCase() === code);
  }

  /** The fields of the chosen type's property assignments (name, notes, history id have their own). */
  private buildProperties(): void {
    const previous = this.options.previous?.properties ?? {};
    const kept = new Map<string, string>();
    this._extra.forEach((input, code) => kept.set(code, input.value));
    this._extra.clear();
    this._properties.replaceChildren();
    const type = this.currentType;
    const properties = type?.properties ?? this.options.defaults.properties ?? [];
    const codes = fieldCodes(properties);
    const mandatory = new Set(properties.filter(p => p.mandatory).map(p => p.code));
    this._nameLabel.className = codes.name && mandatory.has(codes.name) ? 'jp-OpenBISSave-mandatory' : '';
    this._notesLabel.className = codes.notes && mandatory.has(codes.notes) ? 'jp-OpenBISSave-mandatory' : '';
    const covered = new Set(Object.values(codes).filter(Boolean) as string[]);
    for (const p of properties) {
      if (covered.has(p.code) || p.code.startsWith('$XML')) {
        continue;
      }
      const input = propertyInput(p, kept.get(p.code) ?? previous[p.code] ?? '');
      input.title = p.description || p.code;
      input.dataset.code = p.code;
      if (this.options.problems?.[p.code]) {
        input.classList.add('jp-OpenBISSave-invalid');
      }
      this._extra.set(p.code, input);
      field(this._properties, `${p.label} (${p.code})`, input, p.mandatory);
    }
  }

  /** `{code: why}` for what openBIS would refuse, checked here before anything is uploaded. */
  problems(): Record<string, string> {
    const type = this.currentType;
    if (!type) {
      return {};
    }
    const request = this.getValue();
    const codes = fieldCodes(type.properties);
    const values: Record<string, string> = { ...(request.properties ?? {}) };
    for (const key of ['name', 'notes', 'history_id'] as const) {
      const code = codes[key];
      if (code && request[key]) {
        values[code] = request[key] as string;
      }
    }
    const problems = checkValues(type.properties, values);
    if (!request.owner) {
      problems['Owner'] = 'is mandatory';
    }
    return problems;
  }

  getValue(): ISaveRequest {
    const id = this._ownerId.value.trim();
    const request: ISaveRequest = {
      path: this.options.defaults.path,
      type: this._type.value.trim() || this.options.defaults.type,
      name: this._name.value,
      notes: this._notes.value,
      history_id: this._historyId.value.trim(),
      parents: this._parents.value
        .split(/[\s,]+/)
        .map(p => p.trim())
        .filter(p => p.length > 0),
      files: this._files.filter(b => b.checked).map(b => b.value),
      environment: this._environment.checked
    };
    if (id) {
      request.owner = (this._ownerKind.value === 'object' ? { object: id } : { experiment: id }) as Owner;
    }
    const properties: Record<string, string> = {};
    this._extra.forEach((input, code) => {
      if (input.value.trim()) {
        properties[code] = input.value;
      }
    });
    request.properties = properties;
    return request;
  }
}

/** A dialog body showing the new dataset's permId and a link to it in the ELN. */
export function resultBody(permId: string, link: string, files: string[] = []): Widget {
  const node = document.createElement('div');
  const text = document.createElement('p');
  text.textContent = 'Saved to openBIS as dataset ';
  const code = document.createElement('code');
  code.textContent = permId;
  text.append(code, '.');
  const anchor = document.createElement('a');
  anchor.href = link;
  anchor.target = '_blank';
  anchor.rel = 'noopener';
  anchor.textContent = 'Open it in the openBIS ELN';
  anchor.style.textDecoration = 'underline';
  node.append(text, anchor);
  if (files.length) {
    const list = document.createElement('p');
    list.className = 'jp-OpenBISSave-saved-files';
    list.textContent = 'Files: ' + files.join(', ');
    node.append(list);
  }
  return new Widget({ node });
}
