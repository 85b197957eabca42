import * as api from '../api.js';
import { form, h } from '../ui.js';

export const title = 'New team';

export async function render(ctx) {
  const types = await api.list('/team-types').catch(() => []);
  const active = types.filter((t) => t.active !== false);
  const fields = [
    { name: 'name', label: 'Team name', required: true },
    { name: 'slug', label: 'Slug (optional)', hint: 'Lower-case letters, digits and dashes; used in addresses.' },
  ];
  if (active.length > 1) {
    fields.push({ name: 'teamTypeId', label: 'Team type', type: 'select', options: active.map((t) => ({ value: t.id, label: t.name })) });
  }
  return [h('h1', {}, 'Create a team'), form({
    label: 'Create a team',
    submit: 'Create team',
    fields,
    onSubmit: async (v) => {
      const body = { name: v.name };
      if (v.slug) body.slug = v.slug;
      if (v.teamTypeId) body.teamTypeId = v.teamTypeId;
      const team = await api.post('/teams', body);
      await ctx.refreshTeams();
      ctx.navigate(`/teams/${team.slug}`);
    },
  })];
}
