/** The parts of the native pod view (GET /api/v1/pods/{id}) that multi-container tests read. */
export interface ContainerView {
  name: string;
  containerId: string | null;
  state: string;
  healthy?: boolean | null;
  healthFailures?: number;
}

export interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
  portMappings: Record<string, number>;
  instances: { id: string; state: string; message: string | null; containers: ContainerView[] }[];
}
