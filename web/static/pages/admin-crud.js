// Shared by the admin pages of platform objects (stacks, templates, instance types, team types, blueprints):
// a table with Edit and Delete per row, an edit form in place, and a create form. Platform admins write;
// everyone else only reads (the API refuses them too). A delete of an object in use answers 409, shown beside
// its Delete button.
import * as api from '../api.js';
import { action, announce, badge, form, h, replace, section, table } from '../ui.js';

// objectPage: path '/stacks'; noun 'stack'; columns as table(); fields(obj|null) the form fields;
// body(values, obj|null) the request body.
export async function objectPage(ctx, { path, heading, noun, columns, fields, body, intro }) {
  const admin = !!ctx.user.admin;
  const listEl = h('div', {});
  const editor = h('div', { 'aria-live': 'polite' });
  const refresh = async () => draw(await api.list(path));
  const edit = (obj) => {
    replace(editor, section(`Edit ${noun} ${obj.name}`, form({
      label: `Edit ${noun} ${obj.name}`, submit: 'Save changes', fields: fields(obj),
      onSubmit: async (v) => {
        await api.patch(`${path}/${obj.id}`, body(v, obj));
        announce(`${obj.name} saved.`);
        replace(editor);
        await refresh();
      },
    }), h('button', { type: 'button', onClick: () => replace(editor) }, 'Close')));
    editor.querySelector('input,select,textarea')?.focus();
  };
  const draw = (items) => replace(listEl, table({
    caption: heading,
    columns: [...columns, ...(admin ? [{ label: 'Actions', cell: (o) => h('div', { class: 'actions' },
      h('button', { type: 'button', onClick: () => edit(o) }, 'Edit'),
      action('Delete', async () => {
        await api.del(`${path}/${o.id}`);
        announce(`${o.name} deleted.`);
        await refresh();
      }, { danger: true, confirm: { title: `Delete ${noun} ${o.name}?`, confirm: 'Delete' } })) }] : [])],
    rows: items,
    empty: `No ${noun}s yet.`,
    rowAttrs: (o) => ({ 'data-name': o.name }),
  }));
  draw(await api.list(path));
  return [
    h('h1', {}, heading),
    intro ? h('p', { class: 'muted' }, intro) : null,
    listEl,
    editor,
    admin ? section(`New ${noun}`, form({
      label: `Create a ${noun}`, submit: `Create ${noun}`, fields: fields(null),
      onSubmit: async (v, el) => {
        const o = await api.post(path, body(v, null));
        el.reset();
        announce(`${noun} ${o.name} created.`);
        await refresh();
      },
    })) : null,
  ];
}

// json parses a textarea's JSON and reports a parse error on that field, as the API would.
export function json(name, text, fallback) {
  if (!text || !text.trim()) return fallback;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new api.ApiError(422, { code: 'invalid_json', message: 'A field is not valid JSON.',
      validations: [{ field: name, detail: `is not valid JSON: ${e.message}` }] });
  }
}

export const pretty = (v) => JSON.stringify(v ?? null, null, 2);
// activeColumn and activeField show and edit an object's active flag.
export const activeColumn = { label: 'State', cell: (o) => badge(o.active ? 'active' : 'inactive') };
export const activeField = (o) => ({ name: 'active', label: 'Active (offered for new objects)', type: 'checkbox', value: o ? o.active : true });
export const nameFields = (o) => [{ name: 'name', label: 'Name', value: o?.name, required: true },
  { name: 'description', label: 'Description', value: o?.description }];
