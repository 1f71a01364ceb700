export default function CreatePodPage() {
  return <h1>New pod</h1>;
}
