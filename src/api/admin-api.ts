import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requireAdmin } from './auth.ts';
import { adminRecordRoutes, type AdminRecordRouteDeps } from './admin.ts';
import { adminClientRoutes, type AdminClientRouteDeps } from './admin-clients.ts';
import { adminDashboardRoutes, type DashboardApiDeps } from './admin-dashboard.ts';
import { adminUpstreamRoutes, type UpstreamView } from './admin-upstream.ts';

export type AdminApiDeps = AdminRecordRouteDeps & AdminClientRouteDeps & DashboardApiDeps & {
  adminToken: string;
  upstream: UpstreamView | null;
};

/** The admin API: every admin route module under /admin/api, behind one auth hook. */
export function adminApi(app: FastifyInstance, deps: AdminApiDeps): void {
  app.register(async function adminApiScope(admin) {
    // The admin token on every request, compared in constant time, before any route's own work.
    admin.addHook('onRequest', async function adminAuth(req: FastifyRequest): Promise<void> {
      requireAdmin(req, deps.adminToken);
    });
    adminRecordRoutes(admin, deps);
    adminDashboardRoutes(admin, deps);
    adminUpstreamRoutes(admin, deps);
    adminClientRoutes(admin, deps);
  }, { prefix: '/admin/api' });
}
