export default function PodPage({ id }: { id: string }) {
  return <h1>Pod {id}</h1>;
}
