import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error answered by the openBIS endpoints of the notebook server. */
export class OpenBISRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {}
  ) {
    super(message);
  }
}

/** Call `<base_url><endpoint>` with the server's auth and XSRF handling. */
export async function requestAPI<T>(
  endpoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new OpenBISRequestError(0, `The notebook server is unreachable: ${error}`);
  }
  const text = await response.text();
  let data: any = {};
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new OpenBISRequestError(
      response.status,
      (data && data.message) || response.statusText || `HTTP ${response.status}`,
      data
    );
  }
  return data as T;
}

export type Owner = { experiment: string } | { object: string };

export interface IPropertyAssignment {
  code: string;
  label: string;
  description?: string;
  data_type?: string;
  mandatory: boolean;
  terms?: { code: string; label: string }[] | null;
}

/** `GET openbis/save?path=`: defaults for the save dialog. */
export interface ISaveDefaults {
  path: string;
  type: string;
  owner: Owner | null;
  parents: string[];
  name: string;
  notes: string;
  history_id: string;
  history_id_new?: boolean;
  downloaded?: { permId: string; path: string | null; files: string[] | null }[];
  openbis_url: string;
  properties: IPropertyAssignment[] | null;
  property_codes: { name: string | null; notes: string | null; history_id: string | null } | null;
  error?: { status: number; message: string };
}

export interface ISaveRequest {
  path: string;
  type?: string;
  owner?: Owner;
  parents?: string[];
  name?: string;
  notes?: string;
  history_id?: string;
  properties?: Record<string, string>;
  files?: string[];
  environment?: boolean;
  edited_cells?: number[];
}

export interface ISaveResult {
  permId: string;
  link: string;
  path: string;
  type: string;
  hash: string;
  files: string[];
  history_id: string;
  environment: Record<string, any> | null;
}

export interface IConfig {
  frame_ancestors: string[];
  openbis_url: string;
}

export function getDefaults(path: string): Promise<ISaveDefaults> {
  return requestAPI<ISaveDefaults>(
    'openbis/save?' + URLExt.objectToQueryString({ path }).replace(/^\?/, '')
  );
}

export function saveToOpenBIS(request: ISaveRequest): Promise<ISaveResult> {
  return requestAPI<ISaveResult>('openbis/save', {
    method: 'POST',
    body: JSON.stringify(request)
  });
}

export function getConfig(): Promise<IConfig> {
  return requestAPI<IConfig>('openbis/config');
}

export async function serverHash(path: string): Promise<string> {
  const answer = await requestAPI<{ hash: string }>(
    'openbis/hash?' + URLExt.objectToQueryString({ path }).replace(/^\?/, '')
  );
  return answer.hash;
}

function query(params: Record<string, string | number | undefined>): string {
  const clean: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') {
      clean[key] = String(value);
    }
  }
  return URLExt.objectToQueryString(clean);
}

export type NodeKind = 'space' | 'project' | 'collection' | 'object' | 'dataset';

/** One entity as the panel shows it. */
export interface INode {
  kind: NodeKind;
  permId: string;
  code: string;
  identifier: string | null;
  type: string | null;
  name: string | null;
  properties: Record<string, unknown>;
  registrator: string | null;
  registrationDate: number | null;
  size?: number | null;
  owner?: Owner | null;
  parents?: INode[];
  children?: INode[];
}

export interface IChildren {
  start: number;
  count: number;
  total: number;
  children: INode[];
}

export interface IDatasetFile {
  path: string;
  directory: boolean;
  size: number;
}

export interface ISession {
  valid: boolean;
  user: string;
  openbis_user?: string;
  personal_access_token: boolean | null;
  renewed_at: number | null;
  checked_at: number;
  refresh_interval: number;
  message: string | null;
  openbis_url: string;
}

export interface IDatasetType {
  code: string;
  description: string;
  properties: IPropertyAssignment[];
}

export interface IDownload {
  id: string;
  state: 'running' | 'done' | 'error';
  folder: string;
  bytes_done: number;
  bytes_total: number;
  files_done: number;
  files_total: number;
  datasets: { permId: string; path: string; files: string[] }[];
  error: { status: number; message: string } | null;
}

export function getSession(): Promise<ISession> {
  return requestAPI<ISession>('openbis/session');
}

export function getChildren(
  kind: NodeKind | 'root',
  id?: string,
  start = 0
): Promise<IChildren> {
  return requestAPI<IChildren>('openbis/tree' + query({ kind, id, start }));
}

export function search(
  q: string,
  kinds?: string
): Promise<{ hits: INode[]; totals: Record<string, number> }> {
  return requestAPI('openbis/search' + query({ q, kinds }));
}

export function getEntity(kind: NodeKind, id: string): Promise<INode> {
  return requestAPI<INode>('openbis/entity' + query({ kind, id }));
}

export async function getFiles(permId: string): Promise<IDatasetFile[]> {
  const answer = await requestAPI<{ files: IDatasetFile[] }>(
    'openbis/files' + query({ permId })
  );
  return answer.files;
}

export function getTypes(): Promise<{ types: IDatasetType[]; default: string }> {
  return requestAPI('openbis/types');
}

export function startDownload(
  datasets: { permId: string; files?: string[] }[],
  folder: string
): Promise<IDownload> {
  return requestAPI<IDownload>('openbis/downloads', {
    method: 'POST',
    body: JSON.stringify({ datasets, folder })
  });
}

export function getDownload(id: string): Promise<IDownload> {
  return requestAPI<IDownload>(`openbis/downloads/${id}`);
}

export function openFromDataset(request: {
  permId: string;
  file?: string;
  folder: string;
  name?: string;
  keep_history: boolean;
}): Promise<{ path: string; permId: string; history_id: string }> {
  return requestAPI('openbis/open', {
    method: 'POST',
    body: JSON.stringify(request)
  });
}
