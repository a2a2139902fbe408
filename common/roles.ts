// The roles a certificate carries (its subject OU), apart from tls.ts so that
// schedctl can offer them as choices without loading gRPC and zod.
export const ROLES = ['manager', 'worker', 'admin'] as const;
export type Role = (typeof ROLES)[number];
