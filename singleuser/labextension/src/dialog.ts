import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ISaveDefaults, ISaveRequest, Owner } from './api';

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

/** The form of the "Save to openBIS" dialog; its value is the save request. */
export class SaveForm extends Widget implements Dialog.IBodyWidget<ISaveRequest> {
  private _name: HTMLInputElement;
  private _notes: HTMLTextAreaElement;
  private _ownerKind: HTMLSelectElement;
  private _ownerId: HTMLInputElement;
  private _parents: HTMLTextAreaElement;
  private _historyId: HTMLInputElement;
  private _type: HTMLInputElement;
  private _extra = new Map<string, HTMLInputElement>();

  constructor(private readonly defaults: ISaveDefaults) {
    super();
    const form = document.createElement('div');
    form.className = 'jp-OpenBISSave-form';
    this.node.append(form);

    if (defaults.error) {
      const warning = document.createElement('p');
      warning.className = 'jp-OpenBISSave-warning';
      warning.textContent = defaults.error.message;
      form.append(warning);
    }
    const codes = defaults.property_codes;
    const mandatory = new Set(
      (defaults.properties || []).filter(p => p.mandatory).map(p => p.code)
    );

    this._name = textInput(defaults.name);
    field(form, 'Name', this._name, !!codes?.name && mandatory.has(codes.name));

    this._notes = document.createElement('textarea');
    this._notes.value = defaults.notes ?? '';
    field(form, 'Notes', this._notes, !!codes?.notes && mandatory.has(codes.notes));

    const owner = document.createElement('div');
    owner.className = 'jp-OpenBISSave-owner';
    this._ownerKind = document.createElement('select');
    for (const [value, label] of [
      ['experiment', 'Experiment / Collection'],
      ['object', 'Object']
    ]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this._ownerKind.append(option);
    }
    const current: Owner | null = defaults.owner;
    this._ownerKind.value = current && 'object' in current ? 'object' : 'experiment';
    this._ownerId = textInput(
      current ? ('object' in current ? current.object : current.experiment) : '',
      '/SPACE/PROJECT/COLLECTION or permId'
    );
    owner.append(this._ownerKind, this._ownerId);
    const ownerLabel = document.createElement('label');
    const ownerText = document.createElement('span');
    ownerText.textContent = 'Owner';
    ownerText.className = 'jp-OpenBISSave-mandatory';
    ownerLabel.append(ownerText, owner);
    form.append(ownerLabel);

    this._parents = document.createElement('textarea');
    this._parents.value = (defaults.parents || []).join('\n');
    this._parents.placeholder = 'one dataset permId per line';
    field(form, 'Parent datasets', this._parents);

    this._historyId = textInput(defaults.history_id);
    field(form, 'History id (same id = new version of the same notebook)', this._historyId);

    this._type = textInput(defaults.type);
    field(form, 'Dataset type', this._type);

    const covered = new Set(
      [codes?.name, codes?.notes, codes?.history_id].filter(Boolean) as string[]
    );
    for (const property of defaults.properties || []) {
      if (covered.has(property.code) || property.code.startsWith('$XML')) {
        continue;
      }
      const input = textInput('');
      input.title = property.description || property.code;
      this._extra.set(property.code, input);
      field(form, `${property.label} (${property.code})`, input, property.mandatory);
    }
  }

  getValue(): ISaveRequest {
    const id = this._ownerId.value.trim();
    const request: ISaveRequest = {
      path: this.defaults.path,
      type: this._type.value.trim() || this.defaults.type,
      name: this._name.value,
      notes: this._notes.value,
      history_id: this._historyId.value.trim(),
      parents: this._parents.value
        .split(/[\s,]+/)
        .map(p => p.trim())
        .filter(p => p.length > 0)
    };
    if (id) {
      request.owner = (
        this._ownerKind.value === 'object' ? { object: id } : { experiment: id }
      ) as Owner;
    }
    const properties: Record<string, string> = {};
    this._extra.forEach((input, code) => {
      if (input.value.trim()) {
        properties[code] = input.value;
      }
    });
    if (Object.keys(properties).length) {
      request.properties = properties;
    }
    return request;
  }
}

/** A dialog body showing the new dataset's permId and a link to it in the ELN. */
export function resultBody(permId: string, link: string): Widget {
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
  return new Widget({ node });
}
