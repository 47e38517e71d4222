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
}

export interface ISaveResult {
  permId: string;
  link: string;
  path: string;
  type: string;
  hash: string;
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
